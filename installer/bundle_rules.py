"""The rules an unpacked bundle must meet: ONE implementation, applied by install.py and by `bundler verify`.

Standard library only, Python 3.6, and no imports from the rest of the installer: the bundler loads this very
file (bundler/bundle/verify.py) for unpacked trees and for its final comparison of a tarball, so the two
verifiers cannot drift apart. A tree is accepted only when every rule holds:

  R1  SHA256SUMS exists at the top and every line is `<64 hex digits>  <path>` (what `sha256sum -c` reads),
      no path listed twice
  R2  no listed path is absolute or contains '..'
  R3  every listed path is in the tree and its content has the listed sha256
  R4  every file in the tree is listed (SHA256SUMS and SHA256SUMS.asc themselves aside, and the installer's own
      cluster record, see INSTALLER_STATE); directories hold no content and are not listed, so an extra empty
      directory is harmless
  R5  nothing in the tree is a device file, named pipe or socket
  R6  a symbolic link must resolve to a regular file inside the tree (it is then judged by that file's content)
  R7  bundle.json is listed
  R8  (with a key) SHA256SUMS.asc is a valid signature of SHA256SUMS by that key: gpg, run by each side
  R9  a delta bundle (bundle.json has a `delta` section) may lack a listed file only when its bundle.json,
      itself matching SHA256SUMS, names that path with the same sha256 under delta.omitted, and the path is
      an RPM (repo/Packages/), an image blob (images/blobs/sha256/) or a file (files/): the site already holds
      it (install.py completes the bundle from there, installer/delta.py). Everything present is still checked.

Unlisted files fail R4 from the directory listing alone; they are never opened (an unlisted 1 GiB file costs
nothing to refuse, and a FIFO is never read).
"""

import hashlib
import json
import os
import re
import stat

SUMS = "SHA256SUMS"
SIG = "SHA256SUMS.asc"
REQUIRED = ("bundle.json",)
#: What install.py itself writes into its bundle directory after the check (the cluster record: hosts and
#: options, for later status/plan/reset). Never part of a build, so never listed; exempt from R4 only as a
#: regular file at the top (as a link, device or FIFO it is refused like anything else). Not vouched for.
INSTALLER_STATE = ("cluster.json",)
#: ... and the temporary file of its atomic rewrite, which a run killed at the wrong moment leaves behind.
_INSTALLER_TEMP = re.compile(r"^cluster\.json\.tmp-[0-9]+$")
#: SHA256SUMS/.asc are read into memory; anything bigger is not one of ours.
MAX_CONTROL_FILE = 256 << 20
CHUNK = 1 << 20

_LINE = re.compile(r"^(\\?)([0-9a-fA-F]{64}) [ *](.+)$")

# The problem texts, by rule; both verifiers print exactly these next to the bad path.
DEVICE = "device file: a bundle never contains one"
SPECIAL = "not a regular file (named pipe or socket): a bundle never contains one"
LINK_LEAVES = "symbolic link to %r leaves the bundle directory"
LINK_NOT_FILE = "symbolic link to %r, which is not a file in the bundle"
UNREADABLE = "cannot be read: %s"
SUMS_MISSING = "missing (or unreadable): without it nothing in the bundle can be checked"
LISTED_ABSOLUTE = SUMS + " lists an absolute path; a bundle only lists paths inside itself"
LISTED_DOTDOT = SUMS + " lists a path with '..'; a bundle only lists paths inside itself"
MISSING = "listed in " + SUMS + " but missing from the bundle"
CHANGED = "content differs from " + SUMS + " (expected sha256 %s..., got %s...)"
UNLISTED = "not listed in " + SUMS + ": a file nobody vouches for (added after the build?)"
NOT_COVERED = "not covered by " + SUMS + ": every bundle has a bill of materials"
BUNDLE_JSON = "bundle.json"
#: What a delta bundle may leave out (R9): content the site holds by digest. Never the installer, bundle.json,
#: the repodata, the image index or the manifests.
DELTA_DIRS = ("repo/Packages/", "images/blobs/sha256/", "files/")
DELTA_KINDS = ("packages", "blobs", "files")
DELTA_NOT_OMITTABLE = ("bundle.json's delta section omits it, but a delta bundle may only omit RPMs (repo/Packages/), "
                       "image blobs (images/blobs/sha256/) and files (files/)")
DELTA_DISAGREES = "bundle.json's delta section omits it with another sha256 than " + SUMS + " lists"


class SumsSyntaxError(ValueError):
    """SHA256SUMS itself is malformed (R1); str() is the operator's message."""


class Scan(object):
    """What a pass over a bundle found. Trees fill `files` (hashed later, only if listed); a tarball reader
    fills `digests` (hashed while streaming). `problems` are (path, text) in the order found."""

    def __init__(self):
        self.present = set()  # every non-directory path, relative to the top, '/'-separated
        self.files = {}  # path -> filesystem path whose content it has (a link's target)
        self.digests = {}  # path -> sha256 hex already known
        self.problems = []
        self.reported = set()  # paths already named with a problem
        self.sums = None  # SHA256SUMS bytes
        self.sig = None  # SHA256SUMS.asc bytes
        self.bundle_json = None  # bundle.json bytes, when a tarball reader kept them (a tree reads the file)
        self.omitted = 0  # listed files a delta bundle left out (R9), after check()

    def add(self, path, problem):
        self.problems.append((path, problem))
        self.reported.add(path)


def sha256_file(path, progress=None):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(CHUNK)
            if not block:
                return h.hexdigest()
            h.update(block)
            if progress:
                progress(len(block))


def strip_dot(name):
    """'./top/x' and 'top//x/' name the same path as 'top/x'."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return ("/" if name.startswith("/") else "") + "/".join(parts)


def _unescape(name):
    # GNU sha256sum starts the line with '\' and escapes '\\', '\n' and '\r' when a name contains them.
    out, i = [], 0
    while i < len(name):
        c = name[i]
        if c == "\\" and i + 1 < len(name):
            out.append({"\\": "\\", "n": "\n", "r": "\r"}.get(name[i + 1], "\\" + name[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_sums(text, source=SUMS):
    """R1: map path (as written, '*' binary marker and escapes undone) -> lowercase digest."""
    sums = {}
    for n, raw in enumerate(text.split("\n"), 1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line.strip():
            continue
        m = _LINE.match(line)
        if not m:
            raise SumsSyntaxError(
                "%s line %d is not '<64 hex digits>  <path>' (got %r). The bundle is damaged or was edited by "
                "hand: copy the tarball again, or rebuild it with `bundler build`." % (source, n, line[:80]))
        escaped, digest, name = m.groups()
        if escaped:
            name = _unescape(name)
        if name in sums:
            raise SumsSyntaxError(
                "%s line %d lists %r a second time. The bundle is damaged or was edited by hand: copy the "
                "tarball again, or rebuild it with `bundler build`." % (source, n, name))
        sums[name] = digest.lower()
    return sums


def _read_control(path):
    """SHA256SUMS/.asc bytes, or None if too big or unreadable (then R1/R8 fail, naming the file)."""
    try:
        if os.path.getsize(path) > MAX_CONTROL_FILE:
            return None
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def scan_tree(top):
    """R4-R6 from the listing (lstat only): classify every entry under `top`; open nothing but SHA256SUMS/.asc."""
    scan = Scan()
    top = os.path.abspath(top)
    real_top = os.path.realpath(top)
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, top).replace(os.sep, "/")
            try:
                st = os.lstat(full)
            except OSError as e:
                scan.present.add(rel)
                scan.add(rel, UNREADABLE % e.strerror)
                continue
            if stat.S_ISDIR(st.st_mode):
                continue  # os.walk descends into it (a link to a directory is not S_ISDIR under lstat)
            scan.present.add(rel)
            if stat.S_ISLNK(st.st_mode):
                link, target = os.readlink(full), os.path.realpath(full)
                if not (target == real_top or target.startswith(real_top + os.sep)):
                    scan.add(rel, LINK_LEAVES % link)
                    continue
                try:
                    target_mode = os.stat(target).st_mode
                except OSError:
                    target_mode = 0
                if not stat.S_ISREG(target_mode):
                    scan.add(rel, LINK_NOT_FILE % link)
                    continue
                scan.files[rel] = target
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                scan.add(rel, DEVICE)
                continue
            elif not stat.S_ISREG(st.st_mode):
                scan.add(rel, SPECIAL)
                continue
            else:
                scan.files[rel] = full
            if rel == SUMS:
                scan.sums = _read_control(scan.files[rel])
            elif rel == SIG:
                scan.sig = _read_control(scan.files[rel])
    return scan


def check(scan, progress=None):
    """R1-R4 and R7 against SHA256SUMS. Returns (problems, files_checked, bytes_hashed); hashes listed files only.

    `progress(n)` receives the bytes hashed. Paths in `scan.reported` already have a problem and get no second.
    """
    problems, checked, hashed = [], 0, [0]

    def count(n):
        hashed[0] += n
        if progress:
            progress(n)

    if scan.sums is None:
        return [(SUMS, SUMS_MISSING)], 0, 0
    try:
        sums = parse_sums(scan.sums.decode("utf-8", "replace"))
    except SumsSyntaxError as e:
        return [(SUMS, str(e))], 0, 0
    listed = set()
    omitted = _trusted_omissions(scan, sums, problems)
    for raw_name in sorted(sums):
        expected = sums[raw_name]
        name = strip_dot(raw_name)
        if name.startswith("/"):
            problems.append((raw_name, LISTED_ABSOLUTE))
            continue
        if ".." in name.split("/"):
            problems.append((raw_name, LISTED_DOTDOT))
            continue
        listed.add(name)
        if name in scan.reported:
            continue
        if name not in scan.present:
            if omitted.get(name) == expected:
                scan.omitted += 1  # R9: a delta bundle's omission, vouched for by its checked bundle.json
            else:
                problems.append((name, MISSING))
            continue
        got = scan.digests.get(name)
        if got is None and name in scan.files:
            try:
                got = sha256_file(scan.files[name], count)
            except (IOError, OSError) as e:
                problems.append((name, UNREADABLE % (e.strerror or e)))
                continue
        if got is None:
            continue  # a kind the reader already judged (a tar link it could not resolve is reported there)
        if got != expected:
            problems.append((name, CHANGED % (expected[:16], got[:16])))
        else:
            checked += 1
    for name in sorted(scan.present - listed - scan.reported - {SUMS, SIG} - set(INSTALLER_STATE)):
        if not _INSTALLER_TEMP.match(name):
            problems.append((name, UNLISTED))
    for name in REQUIRED:
        if name not in listed and name not in scan.reported:
            problems.append((name, NOT_COVERED))
    return problems, checked, hashed[0]


def delta_omitted(data):
    """{path: sha256} of what bundle.json's `delta` section says was left out ({} for a whole bundle).
    Raises ValueError (or KeyError/TypeError) when the section is malformed."""
    doc = json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    delta = doc.get("delta") if isinstance(doc, dict) else None
    if not delta:
        return {}
    out = {}
    for kind in DELTA_KINDS:
        for entry in (delta.get("omitted") or {}).get(kind) or []:
            out[strip_dot(str(entry["path"]))] = str(entry["sha256"]).lower()
    return out


def _bundle_json_bytes(scan):
    if scan.bundle_json is not None:
        return scan.bundle_json
    path = scan.files.get(BUNDLE_JSON)
    return _read_control(path) if path else None


def _trusted_omissions(scan, sums, problems):
    """R9: the omissions of a delta bundle, trusted only from a bundle.json whose bytes match SHA256SUMS (a
    changed bundle.json is named by R3, and then every file it omits is missing as well)."""
    want = dict((strip_dot(k), v) for k, v in sums.items())
    data = _bundle_json_bytes(scan) if BUNDLE_JSON in want and BUNDLE_JSON not in scan.reported else None
    if data is None or hashlib.sha256(data).hexdigest() != want[BUNDLE_JSON]:
        return {}
    try:
        claimed = delta_omitted(data)
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}  # not a delta section we can read: nothing is omitted, a missing file is missing
    out = {}
    for path, digest in sorted(claimed.items()):
        if path.startswith("/") or ".." in path.split("/") or not path.startswith(DELTA_DIRS):
            problems.append((path, DELTA_NOT_OMITTABLE))
        elif want.get(path) != digest:
            problems.append((path, DELTA_DISAGREES))
        else:
            out[path] = digest
    return out


def check_tree(top, progress=None):
    """Every problem of the unpacked bundle at `top` (R1-R7): (scan, problems, files_checked, bytes_hashed)."""
    scan = scan_tree(top)
    problems, checked, hashed = check(scan, progress)
    return scan, scan.problems + problems, checked, hashed
