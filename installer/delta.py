"""A delta bundle on site: check that the site holds everything it left out, then complete it from there.

`bundler build --delta-from` leaves out RPMs, image blobs and files the site already holds, naming each with
its sha256 in bundle.json's `delta` section (and still in SHA256SUMS; rule R9 of bundle_rules accepts their
absence). Before any command uses such a bundle, every omitted item is looked up on this host, the serving
host (installer/site_state.py says where), and its content hashed:

  RPM   by sha256 in the served repositories (the same file name first, then any RPM there)
  blob  by digest in the registry storage
  file  by sha256 in the installed bundle's files/ (the cluster record names that bundle)

If anything is missing or damaged, nothing is written and DeltaIncomplete (exit 2) names every item and what to
carry. Otherwise each item is put at its path in the unpacked delta bundle: blobs and files hard-linked when the
filesystem allows (content-addressed and never written again), RPMs copied (the repo phase copies repo/ onto the
served copy with cp, which refuses a file onto itself). Each lands under a temporary name and is renamed once
its bytes are checked, so the tree only ever holds verified files; a second run has nothing left to do. The
completed tree is the whole bundle, SHA256SUMS and all.
"""

import errno
import fcntl
import json
import os
import stat

from installer import bundle_rules as rules
from installer import fileplace
from installer import record as rec
from installer import site_state as site
from installer.errors import InstallerError

TMP_SUFFIX = ".airgap-delta-tmp"
KINDS = (("packages", "RPM"), ("blobs", "image blob"), ("files", "file"))
#: commands that do not use the bundle's content (reset undoes, the others complete or measure on their own)
NOT_COMPLETED_FOR = ("reset", "complete-delta", "export-state", "status")


class DeltaIncomplete(InstallerError):
    """The site lacks what a delta bundle left out: carry those items (or the whole bundle) in."""

    exit_code = 2


def omitted_items(bundle_dir):
    """[(kind, path, sha256, label)] of what the bundle's bundle.json says was left out; [] for a whole bundle."""
    path = os.path.join(bundle_dir, rules.BUNDLE_JSON)
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read().decode("utf-8"))
    except (IOError, OSError, ValueError):
        return []  # the bundle check names an unreadable bundle.json
    try:
        return _items(path, doc)
    except (KeyError, TypeError, AttributeError) as e:
        raise InstallerError("%s has a malformed delta section (%r)" % (path, e),
                             hint="The bundle is damaged or was not written by bundler build") from None


def _items(path, doc):
    omitted = ((doc.get("delta") or {}).get("omitted") or {}) if isinstance(doc, dict) else {}
    out = []
    for kind, _ in KINDS:
        for e in omitted.get(kind) or []:
            rel = rules.strip_dot(str(e["path"]))
            if rel.startswith("/") or ".." in rel.split("/") or not rel.startswith(rules.DELTA_DIRS):
                raise InstallerError("%s: the delta section omits %r: %s" % (path, rel, rules.DELTA_NOT_OMITTABLE),
                                     hint="The bundle is damaged or was not written by bundler build")
            label = e.get("nevra") or e.get("name") or e.get("digest") or rel
            out.append((kind, rel, str(e["sha256"]).lower(), label))
    return out


def base_ids(bundle_dir):
    try:
        with open(os.path.join(bundle_dir, rules.BUNDLE_JSON)) as f:
            return ((json.load(f).get("delta") or {}).get("base") or {}).get("bundles") or []
    except (IOError, OSError, ValueError, AttributeError):
        return []


class Site(object):
    """Finds omitted items on this host by content, hashing each candidate at most once."""

    def __init__(self, root, installed_dir):
        self.root = root
        self.installed_dir = installed_dir
        self._hashes = {}  # path -> sha256
        self._rpms = None
        self._files = None

    def _sha(self, path):
        if path not in self._hashes:
            try:
                self._hashes[path] = site.sha256_file(path)
            except (IOError, OSError):
                self._hashes[path] = None
        return self._hashes[path]

    def find(self, kind, rel, digest):
        """(path holding that content, None) or (None, why not)."""
        if kind == "blobs":
            p = site.blob_path(self.root, digest)
            if not os.path.isfile(p):
                return None, "not in the registry storage (%s)" % os.path.dirname(site.blob_path("/", digest))
            if self._sha(p) != digest:
                return None, "damaged in the registry storage (%s does not hash to its name)" % p
            return p, None
        if kind == "packages":
            if self._rpms is None:
                self._rpms = site.served_rpms(self.root)
            name = rel.rsplit("/", 1)[-1]
            candidates = sorted(self._rpms, key=lambda p: os.path.basename(p) != name)  # same name first
            where = "in the served repositories (%s)" % site.local("/", "/opt/airgap")
        else:
            if self._files is None:
                self._files = site.bundle_files(self.installed_dir)
            candidates = sorted(self._files.values(), key=lambda p: not p.endswith("/" + rel))
            where = ("in the installed bundle's files/ (%s)" % self.installed_dir if self.installed_dir
                     else "here: no installed bundle is recorded on this host")
        for p in candidates:
            if self._sha(p) == digest:
                return p, None
        return None, "no file with that sha256 " + where


def _installed_dir(root, bundle_dir):
    try:
        data, _ = rec.find(root, bundle_dir)
    except InstallerError:
        return None
    return ((data or {}).get("bundle") or {}).get("dir")


def check(bundle_dir, root="/", verified=False):
    """([(item, source path)] still to put in place, number already in place). Raises DeltaIncomplete naming
    every omitted item the site lacks; reads only. verified: the bundle check just hashed the files present
    (rule R3), so an omitted item already in place is not hashed again."""
    items = omitted_items(bundle_dir)
    s = Site(root, _installed_dir(root, bundle_dir))
    todo, missing, present = [], [], 0
    for kind, rel, digest, label in items:
        dest = os.path.join(bundle_dir, rel)
        if os.path.isfile(dest) and (verified or s._sha(dest) == digest):
            present += 1
            continue
        src, why = s.find(kind, rel, digest)
        if src is None:
            missing.append((kind, rel, digest, label, why))
        else:
            todo.append(((kind, rel, digest, label), src))
    if missing:
        raise _incomplete(bundle_dir, missing)
    return todo, present


def _incomplete(bundle_dir, missing):
    names = dict(KINDS)
    detail = "; ".join("%s %s (%s, sha256 %s...): %s" % (names[k], label, rel, d[:16], why)
                       for k, rel, d, label, why in missing)
    bases = ", ".join("%s %s" % (b.get("name"), b.get("version")) for b in base_ids(bundle_dir)) or "its base"
    return DeltaIncomplete(
        "the delta bundle in %s needs %d item(s) its base (%s) should have left on this site, and they are not "
        "here: %s" % (bundle_dir, len(missing), bases, detail),
        hint="Nothing was changed. Carry in the whole bundle instead of the delta (bundler build without "
             "--delta-from), or these items; or build the delta again from a fresh `./install.py export-state` of "
             "this site")


def complete(bundle_dir, root="/", say=None, verified=False):
    """Check, then put every omitted item in place (verified). Returns (completed now, already there)."""
    say = say or (lambda msg: None)
    todo, present = check(bundle_dir, root, verified)
    held = _exclusive(bundle_dir) if todo else None
    try:
        for (kind, rel, digest, label), src in todo:
            _place(src, os.path.join(bundle_dir, rel), digest, link=kind != "packages", label=label)
    finally:
        if held is not None:
            os.close(held)
    if todo:
        say("delta bundle: completed %d item(s) from this site (%d already in place)" % (len(todo), present))
    return len(todo), present


def _place(src, dest, digest, link, label):
    d = os.path.dirname(dest)
    if not os.path.isdir(d):
        os.makedirs(d)
    tmp = fileplace.tmp_beside(dest, TMP_SUFFIX)
    fileplace.remove_quietly(tmp)
    try:
        if not (link and fileplace.may_link(os.stat(src)) and fileplace.try_link(src, tmp)):
            got = fileplace.copy_hashed(src, tmp)
            if got != digest:
                raise DeltaIncomplete("%s (%s) changed while it was copied from %s: its sha256 is now %s"
                                      % (label, os.path.basename(dest), src, got),
                                      hint="Run the command again; if it persists, the disk is failing")
            os.chmod(tmp, 0o755 if os.stat(src).st_mode & stat.S_IXUSR else 0o644)
        os.rename(tmp, dest)
    except (IOError, OSError) as e:
        fileplace.remove_quietly(tmp)
        raise InstallerError("cannot complete the delta bundle: writing %s failed (%s)" % (dest, e.strerror or e),
                             hint="Check free space and permissions in the bundle directory, then run "
                                  "./install.py complete-delta again") from None
    except BaseException:
        fileplace.remove_quietly(tmp)
        raise


def _exclusive(bundle_dir):
    """An exclusive flock on the bundle directory itself (no file is added to the bundle): two commands completing
    the same delta at once would remove and rename each other's temporary files. Returns the fd to close (None
    where flock is not available); raises when another process holds it."""
    try:
        fd = os.open(bundle_dir, os.O_RDONLY)
    except OSError:
        return None  # the bundle check names a missing or unreadable bundle directory
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (IOError, OSError) as e:
        os.close(fd)
        if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
            raise InstallerError("another command is completing the delta bundle in %s right now" % bundle_dir,
                                 hint="Wait until it ends, then run this command again (nothing was changed)") \
                from None
        return None  # a file system without flock: go on as before
    return fd


def clean_partial(bundle_dir):
    """Remove the temporary files a completion killed midway left (they would fail rule R4). Only in a delta
    bundle, and only names of that exact form: called before the bundle check (which names a bad bundle.json)."""
    try:
        if not omitted_items(bundle_dir):
            return
        held = _exclusive(bundle_dir)
    except InstallerError:
        return  # a completion runs: its temporary files are not partial
    try:
        _clean(bundle_dir)
    finally:
        if held is not None:
            os.close(held)


def _clean(bundle_dir):
    for sub in rules.DELTA_DIRS:
        top = os.path.join(bundle_dir, sub)
        if not os.path.isdir(top):
            continue
        for dirpath, _, filenames in os.walk(top):
            for f in filenames:
                if f.endswith(TMP_SUFFIX) and f.startswith("."):
                    fileplace.remove_quietly(os.path.join(dirpath, f))


def before_use(command, bundle_dir, root="/", dry_run=False, say=None, verified=True):
    """The automatic step at the start of a command that uses the bundle (called right after the bundle check,
    so the files present are verified): a
    delta bundle is checked against the site (exit 2 naming what is missing) and, unless dry_run, completed.
    Nothing to do for a whole bundle."""
    if command in NOT_COMPLETED_FOR or not omitted_items(bundle_dir):
        return None
    say = say or (lambda msg: None)
    if dry_run:
        todo, present = check(bundle_dir, root, verified)
        if todo:
            say("delta bundle: the %d item(s) it left out are on this site; the command itself would copy them "
                "in (./install.py complete-delta)" % len(todo))
        return 0
    return complete(bundle_dir, root, say, verified)[0]
