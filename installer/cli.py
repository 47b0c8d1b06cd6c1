"""./install.py [install|plan|status|reset] [options]: argument parsing (one parser per command, so each
command's --help shows its own options and refuses the others) and the top-level error handler."""

import argparse
import os
import sys

from installer import __version__
from installer import inventory as inv
from installer import record as rec
from installer.bundle import Bundle
from installer.context import Options, upstream_dns_list
from installer.errors import InstallerError
from installer.lock import LOCK
from installer.lock import abort as abort_lock
from installer.output import Output
from installer.runner import DEFAULT_PARALLEL, Runner, default_bundle_dir
from installer.verify_bundle import verify as verify_bundle

COMMANDS = ("install", "plan", "status", "reset")
#: Commands that act on the bundle check it first, before the inventory is read or any host is contacted.
#: status only reads the hosts' state, so it still works from a damaged copy.
CHECKED_COMMANDS = ("install", "plan", "reset")
DESCRIPTIONS = {
    "install": "Install a Kubernetes cluster from this air-gapped bundle (also resumes an interrupted install). "
               "Other commands: plan (dry run), status, reset; see ./install.py COMMAND --help. After an "
               "install the cluster is remembered (%s on this host and cluster.json beside install.py): "
               "later commands need no host options." % rec.SERVE_RECORD,
    "plan": "Dry run of install: connect, run the preflight checks and list what install would change on each "
            "host. Changes nothing (not even python3 on this host). Hosts and options default to the cluster "
            "record of an earlier install.",
    "status": "Show each host's OS, installer phases done and service states, and the cluster's nodes. Reads "
              "only; hosts default to the cluster record of an earlier install.",
    "reset": "Undo everything the installer did (kubeadm reset, restore changed files, remove installed "
             "packages and binaries) on every host of the cluster record, or on the hosts given.",
}


def _hosts(p):
    g = p.add_argument_group("hosts (default: the cluster record of an earlier install)")
    g.add_argument("-i", "--inventory", metavar="FILE", help="ansible-style INI inventory (see docs/installer.md)")
    g.add_argument("--control-plane", metavar="ADDR[,ADDR]", help="control-plane host(s), the first one is inited")
    g.add_argument("--workers", metavar="ADDR[,ADDR]", default="", help="worker hosts")
    g.add_argument("--ssh-user", default="root", help="SSH login (sudo is used when not root; default root)")
    g.add_argument("--ssh-key", metavar="FILE", help="SSH private key")
    g.add_argument("--ssh-port", type=int, default=22)
    g.add_argument("--serve-address", metavar="ADDR",
                   help="this host's cluster address when it is not in the inventory")
    g.add_argument("--bundle", metavar="DIR", default=None, help="the unpacked bundle (default: next to install.py)")


def _install_options(p, hidden=False):
    def h(text):
        return argparse.SUPPRESS if hidden else text
    m = p if hidden else p.add_argument_group("media and bundle")
    m.add_argument("--iso", metavar="FILE", help=h("the OS install DVD image"))
    m.add_argument("--media", metavar="DIR", help=h("a directory with the OS DVD content"))
    m.add_argument("--key", metavar="FILE", help=h("public GPG key: verify SHA256SUMS.asc before anything else"))
    c = p if hidden else p.add_argument_group("cluster (default: as recorded by an earlier install)")
    c.add_argument("--pod-subnet", metavar="CIDR", help=h("pod network (default: the CNI's own)"))
    c.add_argument("--control-plane-endpoint", metavar="HOST:PORT",
                   help=h("API endpoint (a load balancer for several control planes)"))
    c.add_argument("--selinux", choices=("enforcing", "permissive"), help=h("default: enforcing"))
    c.add_argument("--firewalld", choices=("on", "off"),
                   help=h("on: open the needed ports (default); off: stop firewalld"))
    c.add_argument("--timezone", metavar="TZ", help=h("set the hosts' time zone"))
    c.add_argument("--upstream-dns", metavar="IP[,IP]",
                   help=h("where CoreDNS forwards names outside the cluster (default: the nameservers in the "
                          "hosts' /etc/resolv.conf; without any, CoreDNS answers cluster names only)"))
    c.add_argument("--force", action="store_true", help=h("install over an existing Kubernetes"))
    c.add_argument("--verify-timeout", type=int, metavar="SECONDS", help=h("default: 600"))


def build_parser(command="install"):
    prog = "install.py" if command == "install" else "install.py %s" % command
    p = argparse.ArgumentParser(prog=prog, description=DESCRIPTIONS[command])
    if command == "install":
        p.usage = "%(prog)s [install|plan|status|reset] [options]"
    _hosts(p)
    if command in ("install", "plan"):
        _install_options(p)
    elif command == "reset":
        # reset is often typed as the install command line with "reset": those options are accepted and unused
        _install_options(p, hidden=True)
        p.add_argument("-y", "--yes", action="store_true", help="do not ask before reset")
    p.add_argument("--parallel", type=_positive, metavar="N", default=DEFAULT_PARALLEL,
                   help="work on at most N hosts at once (default %d)" % DEFAULT_PARALLEL)
    if command != "status":
        p.add_argument("--abort", action="store_true",
                       help="release the lock left by an interrupted operation (%s) and stop" % LOCK)
    p.add_argument("--root", default="/", help=argparse.SUPPRESS)  # tests: redirect local paths
    p.add_argument("--skip-bundle-check", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--version", action="version", version="airgap-installer %s" % __version__)
    return p


def _positive(text):
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError("%r is not a number of hosts (1 or more)" % text)
    return n


def _takes_value(parser):
    return set(s for a in parser._actions if a.option_strings and a.nargs != 0 for s in a.option_strings)


def split_command(argv):
    """(command, the other arguments): the first word that names a command and is not an option's value
    (./install.py reset -y and ./install.py -y reset both work); no such word means install."""
    values = _takes_value(build_parser("install"))
    prev = None
    for i, a in enumerate(argv):
        if a in COMMANDS and not (prev in values and "=" not in prev):
            return a, argv[:i] + argv[i + 1:]
        if a == "--":
            break
        prev = a
    return "install", list(argv)


def parse(argv):
    command, rest = split_command(list(argv))
    parser = build_parser(command)
    args, extra = parser.parse_known_args(rest)
    if extra:
        opts = [e for e in extra if e.startswith("-")] or extra
        if command == "status":
            parser.error("status does not take %s: it only reads the hosts and changes nothing. Its options: "
                         "the hosts (or none, to use the cluster record); see ./install.py status --help"
                         % " ".join(opts))
        parser.error("unrecognized arguments: %s (see ./install.py %s--help)"
                     % (" ".join(extra), "" if command == "install" else command + " "))
    args.command = command
    return args


def load_inventory(args):
    if args.inventory and args.control_plane:
        raise InstallerError("give either -i INVENTORY or --control-plane/--workers, not both")
    if args.inventory:
        defaults = {"user": args.ssh_user, "port": str(args.ssh_port)}
        if args.ssh_key:
            defaults["key"] = args.ssh_key
        return inv.load(args.inventory, defaults)
    if not args.control_plane:
        return None
    return inv.from_flags(args.control_plane, args.workers, args.ssh_user, args.ssh_port, args.ssh_key)


def check_bundle_first(args, bundle_dir):
    """For the commands that act on the bundle: the files checked, before anything else reads it or any host is
    contacted (raises, naming every bad path). None when this command does not check."""
    if args.command not in CHECKED_COMMANDS or args.skip_bundle_check:
        return None
    key = getattr(args, "key", None)
    sys.stdout.write("checking the bundle in %s against SHA256SUMS%s ...\n"
                     % (os.path.abspath(bundle_dir), " and its signature" if key else ""))
    sys.stdout.flush()
    return verify_bundle(bundle_dir, key)


def resolve(args, say):
    """Inventory, options and the previous cluster record: what is given wins, the record fills the rest."""
    bundle_dir = os.path.abspath(args.bundle or default_bundle_dir())
    given = load_inventory(args)
    try:
        data, path = rec.find(args.root, bundle_dir)
    except InstallerError as e:
        if given is None:
            raise
        say("note: %s; the hosts given are used and the next install rewrites it" % e.message)
        data, path = None, None
    if given is None:
        if data is None:
            raise InstallerError(
                "no hosts given, and no cluster record (%s on this host, or %s beside install.py) from an "
                "earlier install" % (rec.SERVE_RECORD, rec.BUNDLE_RECORD),
                hint="Pass --control-plane ADDRESS [--workers A,B] or -i inventory.ini")
        inventory = rec.inventory_from(data, path)
        say("using the cluster record %s (%s, %d host(s))" % (path, data.get("state", "?"), len(inventory.hosts)))
    else:
        inventory = given
        if data is not None:
            diff = rec.differences(rec.inventory_from(data, path), given)
            if diff:
                say("note: the hosts given differ from the cluster record %s: %s; the hosts given are used"
                    % (path, "; ".join(diff)))
    recorded = (data or {}).get("options") or {}
    values = {}
    for key, default in rec.OPTION_DEFAULTS.items():
        v = getattr(args, key, None)
        if v is None:
            v = recorded.get(key, default)
        values[key] = v
    opts = Options(force=getattr(args, "force", False), **values)
    upstream_dns_list(opts.upstream_dns)  # a clear error before anything else
    return bundle_dir, inventory, opts, data


def main(argv=None):
    args = parse(sys.argv[1:] if argv is None else argv)
    out = None
    try:
        if getattr(args, "abort", False):
            return abort(args)
        notes = []
        checked = check_bundle_first(args, os.path.abspath(args.bundle or default_bundle_dir()))
        bundle_dir, inventory, opts, previous = resolve(args, notes.append)
        bundle = Bundle.load(bundle_dir)
        out = Output(root=args.root)
        if checked is not None:
            out.say("bundle OK (%d files): %s for %s/%s, Kubernetes %s, %s, %s" % (
                checked, bundle.name, bundle.os, bundle.arch, bundle.k8s_version, bundle.runtime, bundle.cni))
        for n in notes:
            out.say(n)
        runner = Runner(bundle, inventory, opts, out, root=args.root, gpg_key=getattr(args, "key", None),
                        skip_verify=args.skip_bundle_check or checked is not None, previous_record=previous,
                        parallel=args.parallel)
        if args.command == "plan":
            runner.plan()
        elif args.command == "status":
            runner.status()
        elif args.command == "reset":
            if not args.yes and not _confirm("reset will run kubeadm reset and undo the installer's changes on %d "
                                             "host(s). Continue? [y/N] " % len(runner.ctx.all_hosts)):
                return 1
            runner.reset()
        else:
            runner.install()
        return 0
    except InstallerError as e:
        if out is not None and not e.log:
            e.log = os.path.join(out.shown_dir, "install.log")
        sys.stderr.write("error: %s\n" % e)
        return e.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; run ./install.py again to resume\n")
        return 130


def abort(args):
    """--abort: release a stale host lock and mark the interrupted operation aborted in the record."""
    sys.stdout.write(abort_lock(args.root) + "\n")
    for path in rec.mark_aborted(args.root, os.path.abspath(args.bundle or default_bundle_dir())):
        sys.stdout.write("marked the interrupted operation aborted in %s\n" % path)
    return 0


def _confirm(prompt):
    try:
        return input(prompt).strip().lower() in ("y", "yes")
    except EOFError:
        return False
