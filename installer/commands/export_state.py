"""./install.py export-state [-o FILE]: what this site holds, measured, for `bundler build --delta-from`."""

import errno
import json
import os
import sys

from installer import record as rec
from installer import site_state
from installer.errors import InstallerError
from installer.runner import default_bundle_dir

COMMAND = "export-state"
DESCRIPTION = ("Write what this site actually holds, measured on this host (the serving host) and not taken from "
               "a record: the sha256 of every RPM in the served repositories, every blob digest in the bundled "
               "registry's storage, the sha256 of the installed bundle's files/, and the installed bundle's ids "
               "(name, version, bundle.json sha256) from the cluster record. Carry the JSON to the build host: "
               "`bundler build MANIFEST --delta-from STATE.json` then ships only what is missing here. Reads only.")
PLAN = False
CHECKS_BUNDLE = False
LOCKS = False


def add_arguments(parser, dry_run):
    parser.add_argument("-o", "--output", metavar="FILE", default="-",
                        help="where to write the JSON (default: standard output)")
    parser.add_argument("--bundle", metavar="DIR", default=None,
                        help="the installed bundle (default: the one the cluster record names)")


def run(args):
    root = args.root
    bundle_dir = os.path.abspath(args.bundle or default_bundle_dir())
    data, path = rec.find(root, bundle_dir)
    serving = [site_state.local(root, p) for p in (site_state.C.SERVE_ROOT, site_state.reg_render.STORAGE)]
    if not any(os.path.isdir(p) for p in serving):
        raise InstallerError("this host serves no bundle repository (%s) and no registry storage (%s)"
                             % tuple(serving), hint="Run export-state on the serving host of the installed cluster "
                                                    "(the host install.py ran on)")
    if args.bundle:
        data = dict(data or {})
        data["bundle"] = dict(data.get("bundle") or {}, dir=bundle_dir)
    if data is None:
        sys.stderr.write("note: no cluster record on this host: the state lists no bundle ids and no files\n")
    say = (lambda msg: sys.stderr.write(msg + "\n")) if args.output == "-" else (lambda msg: print(msg))
    state = site_state.measure(root, data, progress=say)
    text = json.dumps(state, indent=1, sort_keys=True) + "\n"
    for p in state["problems"]:
        sys.stderr.write("warning: %s\n" % p)
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    out = os.path.abspath(args.output)
    if os.path.exists(out) and not os.path.isfile(out) and not os.path.isdir(out):
        _write_into(out, text)  # /dev/stdout, a FIFO: written into, never replaced by a file
        return 0
    tmp = "%s.tmp-%d" % (out, os.getpid())
    try:
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, out)
    except (IOError, OSError) as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise InstallerError("cannot write %s: %s" % (out, e.strerror or e),
                             hint="Give -o a path in a writable directory") from None
    print("wrote %s: %d RPM(s), %d registry blob(s), %d file(s); bundle %s"
          % (out, len(state["rpms"]), len(state["blobs"]), len(state["files"]),
             ", ".join("%s %s" % (b["name"], b["version"]) for b in state["bundles"]) or "none recorded"))
    return 0


def _write_into(path, text):
    """Write into a FIFO or device without blocking when nobody reads it (and without replacing it)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as e:
        why = "nothing reads it" if e.errno == errno.ENXIO else (e.strerror or str(e))
        raise InstallerError("cannot write %s: %s" % (path, why),
                             hint="Start its reader first, or give -o a regular file") from None
    try:
        os.set_blocking(fd, True)
        with os.fdopen(fd, "w") as f:
            f.write(text)
    except (IOError, OSError) as e:
        raise InstallerError("cannot write %s: %s" % (path, e.strerror or e),
                             hint="Give -o a regular file") from None
