"""Check a bundle before trusting it: every file matches SHA256SUMS, nothing else is in it, nothing escapes it.

Works on the tarball as it arrives over the air gap (read once as a stream, hashing each member while reading,
never extracting: a hostile tarball cannot write anything and a 40 GiB one needs no disk and constant memory)
and on an unpacked directory. All problems are collected, not just the first, so the operator sees the whole
extent of a damaged copy in one run. With a key, SHA256SUMS.asc must be a valid signature by that key.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import importlib.util
import io
import lzma
import os
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import BundlerError
from .sums import SIG, SUMS, atomic_write_bytes, sha256_stream

#: Control files are read into memory; anything bigger than this is not a real SHA256SUMS/.asc/bundle.json.
MAX_CONTROL_FILE = 256 << 20
#: Exceptions a truncated or corrupted tar/gzip/xz stream raises while being read.
STREAM_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError)


@functools.cache
def bundle_rules() -> Any:
    """installer/bundle_rules.py, loaded from the installer sources this bundler ships into every bundle: one
    rule set for `bundler verify` and install.py, not a copy that could drift. (Stdlib-only, Python 3.6.)"""
    from .installer_files import installer_source

    try:
        path = installer_source() / "bundle_rules.py"
    except FileNotFoundError as e:
        raise VerifyError(f"{e}: verify needs the installer's bundle_rules.py") from None
    spec = importlib.util.spec_from_file_location("_airgap_bundle_rules", path)
    if spec is None or spec.loader is None:
        raise VerifyError(f"cannot load {path}; reinstall the bundler")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class VerifyError(BundlerError):
    """The bundle could not be checked at all (not a tar archive, gpg missing): exit code 1."""


class BundleNotFound(VerifyError):
    """The path given does not exist or cannot be read: a bad command line, exit code 2 (as click's own)."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One bad file: its path (relative to the bundle's top directory when it has one) and what is wrong."""

    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


@dataclass
class Report:
    """The verdict; `ok` is True only if there are no problems at all."""

    bundle: Path
    top: str | None = None
    files_checked: int = 0
    bytes_hashed: int = 0
    signed_by: str | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def add(self, path: str, problem: str) -> None:
        self.problems.append(Problem(path, problem))

    def format(self) -> str:
        """Human text: a verdict line, then one line per problem (every one of them)."""
        if self.ok:
            sig = f"; signature by {self.signed_by} is valid" if self.signed_by else ""
            return f"{self.bundle}: OK, {self.files_checked} files match {SUMS}{sig}"
        n = len(self.problems)
        head = (f"{self.bundle}: BAD, {n} problem{'s' if n != 1 else ''}. Do not install from it: copy the "
                "tarball again from the original (or rebuild it) and verify again.")
        return "\n".join([head, *(f"  {p}" for p in self.problems)])

    def to_json(self) -> dict:
        return {"bundle": str(self.bundle), "ok": self.ok, "top": self.top, "filesChecked": self.files_checked,
                "bytesHashed": self.bytes_hashed, "signedBy": self.signed_by,
                "problems": [{"path": p.path, "problem": p.problem} for p in self.problems]}


# --------------------------------------------------------------------------------------------------- tar input


class _CountingReader(io.RawIOBase):
    """Reports compressed bytes consumed, so progress is against the tarball's size on disk."""

    def __init__(self, f: BinaryIO, progress: Callable[[int], None] | None):
        self._f, self._progress, self.count = f, progress, 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.count += len(data)
        if self._progress and data:
            self._progress(len(data))
        return data

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def is_tar_file(path: Path) -> bool:
    """By magic, not by name: gzip, xz, bzip2, or a plain tar header ('ustar' at offset 257)."""
    with open(path, "rb") as f:
        head = f.read(512)
    return (head.startswith(b"\x1f\x8b") or head.startswith(b"\xfd7zXZ\x00") or head.startswith(b"BZh")
            or head[257:262] == b"ustar")


def open_tar_stream(path: Path, progress: Callable[[int], None] | None = None) -> tuple[tarfile.TarFile, BinaryIO]:
    """Open for one sequential pass: no seeking, constant memory whatever the size.

    We decompress ourselves (GzipFile/LZMAFile/BZ2File bound their output per read) instead of tarfile's 'r|gz',
    which inflates a whole input buffer at once: a small hostile tarball of zeros would expand to gigabytes.
    """
    raw = open(path, "rb")  # noqa: SIM115 - closed by the caller through the returned handle
    try:
        head = raw.read(6)
        raw.seek(0)
        counted: BinaryIO = io.BufferedReader(_CountingReader(raw, progress), 1 << 20)  # type: ignore[arg-type]
        if head.startswith(b"\x1f\x8b"):
            stream: BinaryIO = gzip.GzipFile(fileobj=counted, mode="rb")  # type: ignore[assignment]
        elif head.startswith(b"\xfd7zXZ\x00"):
            stream = lzma.LZMAFile(counted, "rb")  # type: ignore[assignment]
        elif head.startswith(b"BZh"):
            stream = bz2.BZ2File(counted, "rb")  # type: ignore[assignment]
        else:
            stream = counted
        return tarfile.open(fileobj=stream, mode="r|", bufsize=1 << 20), raw
    except BaseException:
        raw.close()
        raise


def strip_dot(name: str) -> str:
    """'./top/x' and 'top//x/' name the same member as 'top/x' (tar -C dir . writes the former)."""
    while name.startswith("./"):
        name = name[2:]
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return ("/" if name.startswith("/") else "") + "/".join(parts)


def _resolve(parts: list[str], symlinks: dict[str, str], depth: int = 0) -> list[str] | None:
    """Resolve a path inside the archive as the filesystem would after extraction, following symlinks that are
    members; None if it climbs above the archive root, is absolute, or loops. Lexical normalisation is not enough:
    `top/a -> b/c` makes `top/a/../..` land somewhere else than it looks."""
    out: list[str] = []
    for c in parts:
        if c in ("", "."):
            continue
        if c == "..":
            if not out:
                return None
            out.pop()
            continue
        out.append(c)
        target = symlinks.get("/".join(out))
        if target is not None:
            if depth > 40 or target.startswith("/"):
                return None
            res = _resolve(out[:-1] + target.split("/"), symlinks, depth + 1)
            if res is None:
                return None
            out = res
    return out


@dataclass
class _Scan:
    """What a pass over the bundle found, in the same shape for tarballs and directories."""

    present: set[str] = field(default_factory=set)  # every non-directory path under top
    hashes: dict[str, str] = field(default_factory=dict)  # content hash of files (and in-tree links to files)
    reported: set[str] = field(default_factory=set)  # paths already named with a problem
    sums: bytes | None = None
    sig: bytes | None = None
    unreadable: bool = False  # nothing could be read: per-file checks would only add noise


def _read_small(f: BinaryIO | None, size: int) -> bytes | None:
    if f is None or size > MAX_CONTROL_FILE:
        return None
    return f.read()


def _scan_tar(path: Path, report: Report, progress: Callable[[int], None] | None) -> _Scan:
    scan = _Scan()
    tops: dict[str, bool] = {}  # first component -> is it a directory (has children or is a dir entry)
    seen: dict[str, tarfile.TarInfo] = {}
    symlinks: dict[str, str] = {}  # archive path -> link target, for resolution at the end
    member_hash: dict[str, str] = {}  # archive path -> sha256 for every regular member (targets of links)
    members = []  # (archive path, kind, info) in order, to sort into top / outside once the top is known
    duplicates: list[str] = []
    control: dict[str, bytes] = {}  # top-level SHA256SUMS / .asc candidates, picked once the top is known
    count = 0
    raw = None
    try:
        tar, raw = open_tar_stream(path, progress)
        with raw:
            for m in tar:
                count += 1
                name = strip_dot(m.name)
                if name.startswith("/"):
                    report.add(m.name, "absolute path in the tar: extracting it would write outside the bundle")
                    continue
                parts = name.split("/")
                if ".." in parts:
                    report.add(m.name, "'..' in the path: extracting it would write outside the bundle")
                    continue
                if not name:
                    continue  # the './' entry itself
                if name in seen and not (m.isdir() and seen[name].isdir()):
                    duplicates.append(name)
                seen[name] = m
                is_dir_top = len(parts) > 1 or m.isdir()
                tops[parts[0]] = tops.get(parts[0], False) or is_dir_top
                if m.isdir():
                    continue
                if m.ischr() or m.isblk():
                    members.append((name, "bad", "device file: a bundle never contains one"))
                elif m.isfifo():
                    members.append((name, "bad", "named pipe (FIFO): a bundle never contains one"))
                elif m.issym():
                    symlinks[name] = m.linkname
                    members.append((name, "sym", m.linkname))
                elif m.islnk():
                    members.append((name, "hard", m.linkname))
                elif m.isreg():
                    f = tar.extractfile(m)
                    if parts[-1] in (SUMS, SIG) and len(parts) <= 2:
                        data = _read_small(f, m.size) or b""
                        control[name] = data
                        digest = sha256_stream(io.BytesIO(data))
                    else:
                        digest = sha256_stream(f)  # type: ignore[arg-type]
                    report.bytes_hashed += m.size
                    member_hash[name] = digest
                    members.append((name, "reg", digest))
                else:
                    members.append((name, "bad", f"unsupported tar member type {m.type!r}"))
    except STREAM_ERRORS as e:
        if raw is not None:
            raw.close()
        if count == 0:
            report.add(path.name, f"not a readable tar archive, or damaged at its very start ({e}): copy it again "
                                  "from the original, or give the unpacked directory")
            scan.unreadable = True
            return scan
        report.add(path.name, f"the tarball ends or is corrupt after {count} members ({e}): the copy is "
                              "incomplete or damaged; copy it again (see `bundler split` for size-limited media)")

    # The top directory: the one holding SHA256SUMS, else the first one seen.
    top = next((t for t in tops if f"{t}/{SUMS}" in seen), None) or next(iter(tops), None)
    if top is None:
        report.add(path.name, "the tarball is empty")
        return scan
    if not tops[top]:
        report.add(top, "a bundle unpacks into one top-level directory, but this is a file at the top level")
        return scan
    report.top = top
    scan.sums, scan.sig = control.get(f"{top}/{SUMS}"), control.get(f"{top}/{SIG}")
    for other in tops:
        if other != top:
            report.add(other, f"a second top-level entry beside {top}/: a bundle unpacks into exactly one directory")
    prefix = top + "/"
    for name in dict.fromkeys(duplicates):
        if name.startswith(prefix):
            rel = name[len(prefix):]
            report.add(rel, "appears more than once in the tar: extracting keeps only the last copy, which may not "
                            "be what SHA256SUMS describes")
            scan.reported.add(rel)
    for name, kind, info in members:
        if not name.startswith(prefix):
            continue  # reported with its top-level entry above
        rel = name[len(prefix):]
        scan.present.add(rel)
        if kind == "bad":
            report.add(rel, info)
            scan.reported.add(rel)
        elif kind == "reg":
            scan.hashes[rel] = info
        elif kind == "sym":
            res = None if info.startswith("/") else _resolve(name.split("/")[:-1] + info.split("/"), symlinks)
            if res is None or res[0] != top:
                report.add(rel, f"symbolic link to {info!r} leaves the bundle directory")
                scan.reported.add(rel)
            elif "/".join(res) in member_hash:
                scan.hashes[rel] = member_hash["/".join(res)]
            else:
                report.add(rel, f"symbolic link to {info!r}, which is not a file in the bundle")
                scan.reported.add(rel)
        elif kind == "hard":
            target = strip_dot(info)
            if target.startswith("/") or ".." in target.split("/") or not target.startswith(prefix):
                report.add(rel, f"hard link to {info!r} outside the bundle directory")
                scan.reported.add(rel)
            elif target in member_hash:
                scan.hashes[rel] = member_hash[target]
            else:
                report.add(rel, f"hard link to {info!r}, which is not an earlier file in the tar")
                scan.reported.add(rel)
    return scan


# --------------------------------------------------------------------------------------------- directory input


def find_top_dir(path: Path) -> Path:
    """The unpacked bundle: `path` itself, or its only subdirectory when given where the tarball was unpacked."""
    if (path / SUMS).exists() or (path / "bundle.json").exists():
        return path
    subdirs = [p for p in path.iterdir() if p.is_dir() and not p.is_symlink()]
    if len(subdirs) == 1 and ((subdirs[0] / SUMS).exists() or (subdirs[0] / "bundle.json").exists()):
        return subdirs[0]
    return path


def _scan_dir(top: Path, report: Report, progress: Callable[[int], None] | None) -> Any:
    """The unpacked tree, judged by installer/bundle_rules.py exactly as install.py judges it."""
    rules = bundle_rules()
    report.top = top.name
    scan, problems, checked, hashed = rules.check_tree(str(top), progress)
    for path, problem in problems:
        report.add(path, problem)
    report.files_checked, report.bytes_hashed = checked, hashed
    return scan


# ------------------------------------------------------------------------------------------------ common checks


def _check_against_sums(scan: _Scan, report: Report) -> None:
    """A tarball's members against its SHA256SUMS: the same rules (and texts) as an unpacked tree."""
    rules = bundle_rules()
    shared = rules.Scan()
    shared.present, shared.digests, shared.reported, shared.sums = scan.present, scan.hashes, scan.reported, scan.sums
    problems, checked, _ = rules.check(shared)
    for path, problem in problems:
        report.add(path, problem)
    report.files_checked += checked


# -------------------------------------------------------------------------------------------------------- gpg


def _gpg(home: str, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    gpg = shutil.which("gpg") or shutil.which("gpg2")
    if not gpg:
        raise VerifyError("gpg is not installed, so the signature cannot be checked. Install it (`apt-get install "
                          "gnupg` / `yum install gnupg2`) or leave out --key to check only SHA256SUMS.")
    return subprocess.run([gpg, "--batch", "--no-tty", "--homedir", home, *args], input=stdin,
                          capture_output=True, check=False)


def _throwaway_home() -> str:
    # Short path: gpg-agent sockets live in the home and unix socket paths are limited to ~108 bytes.
    return tempfile.mkdtemp(prefix="bgpg-", dir="/tmp" if os.path.isdir("/tmp") else None)


def _cleanup_home(home: str) -> None:
    if any(Path(home).glob("S.*")):
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], capture_output=True, check=False)
    shutil.rmtree(home, ignore_errors=True)


class _SignatureBad(Exception):
    """The signature does not verify; becomes a Problem on SHA256SUMS.asc, not an error."""


def check_signature(sums: bytes, sig: bytes, key: Path) -> str:
    """Return the signing key's fingerprint if `sig` is a valid signature of `sums` by a key in `key`.

    The key is imported into a throwaway GNUPGHOME so the operator's keyring (and its trust settings) can
    neither help nor hurt: only the key given on the command line counts. Raises VerifyError otherwise.
    """
    key = Path(key)
    if not key.is_file():
        raise VerifyError(f"the key file {key} does not exist. Give the armored public key the bundle was signed "
                          "with (`gpg --armor --export KEYID > key.asc` on the build machine).")
    home = _throwaway_home()
    try:
        imp = _gpg(home, "--status-fd", "1", "--import", str(key))
        listing = _gpg(home, "--with-colons", "--list-keys").stdout.decode(errors="replace").splitlines()
        wanted = {ln.split(":")[9].upper() for ln in listing if ln.startswith("fpr:") and ln.split(":")[9]}
        if imp.returncode != 0 or not wanted:
            raise VerifyError(f"cannot import the public key {key}: {imp.stderr.decode(errors='replace').strip()}. "
                              "Give an ASCII-armored public key file (`gpg --armor --export KEYID`).")
        sums_path, sig_path = os.path.join(home, SUMS), os.path.join(home, SIG)
        Path(sums_path).write_bytes(sums)
        Path(sig_path).write_bytes(sig)
        p = _gpg(home, "--status-fd", "1", "--trust-model", "always", "--verify", sig_path, sums_path)
        status = p.stdout.decode(errors="replace").splitlines()
        for line in status:
            f = line.split()
            if len(f) >= 3 and f[0] == "[GNUPG:]" and f[1] == "VALIDSIG":
                signer = f[2].upper()
                primary = f[11].upper() if len(f) > 11 else signer
                if signer in wanted or primary in wanted:
                    return primary
        bad = [ln.split(None, 1)[1] for ln in status if ln.split()[1:2] and ln.split()[1] in
               ("BADSIG", "ERRSIG", "EXPKEYSIG", "REVKEYSIG", "NO_PUBKEY", "NODATA")]
        why = "; ".join(bad) or p.stderr.decode(errors="replace").strip() or "no valid signature"
        raise _SignatureBad(why)
    finally:
        _cleanup_home(home)


def sign_bytes(data: bytes, keyid: str, gnupghome: str | os.PathLike[str] | None = None) -> bytes:
    """Detached ASCII-armored signature of `data` by `keyid`; the writer passes this as its `sign` callback
    (SHA256SUMS is produced while streaming the tarball, so it is signed from memory, never from a file)."""
    gpg = shutil.which("gpg") or shutil.which("gpg2")
    if not gpg:
        raise BundlerError("gpg is not installed, so the bundle cannot be signed. Install gnupg, or build without "
                           "--sign.")
    env = dict(os.environ)
    if gnupghome is not None:
        env["GNUPGHOME"] = str(gnupghome)
    p = subprocess.run([gpg, "--batch", "--yes", "--armor", "--detach-sign", "--local-user", keyid,
                        "--output", "-"], input=data, capture_output=True, env=env, check=False)
    if p.returncode != 0 or b"BEGIN PGP SIGNATURE" not in p.stdout:
        err = p.stderr.decode(errors="replace").strip().replace("\n", " ")
        raise BundlerError(f"gpg could not sign {SUMS} with the key {keyid!r}: {err}. Check that `gpg "
                           f"--list-secret-keys {keyid}` shows the key (set GNUPGHOME if it lives elsewhere) and "
                           "that gpg-agent can unlock it without a prompt (batch mode).")
    return p.stdout


def sign(sums_path: str | os.PathLike[str], keyid: str, gnupghome: str | os.PathLike[str] | None = None) -> Path:
    """Write the detached armored signature SHA256SUMS.asc next to `sums_path`; returns its path.

    Signs only SHA256SUMS: it already pins every other file, so one small signature covers the whole bundle.
    Written to a temp name and renamed, so an interrupted build never leaves a truncated .asc.
    """
    sums_path = Path(sums_path)
    return atomic_write_bytes(sums_path.with_name(SIG), sign_bytes(sums_path.read_bytes(), keyid, gnupghome))


# --------------------------------------------------------------------------------------------------- entry point


def verify(path: str | os.PathLike[str], key: str | os.PathLike[str] | None = None,
           progress: Callable[[int], None] | None = None) -> Report:
    """Check a bundle tarball (.tar/.tar.gz/.tar.xz, detected by content) or unpacked directory.

    Returns a Report listing every problem; raises VerifyError only when the bundle cannot be examined at all
    (BundleNotFound when the path does not exist or cannot be read).
    `progress` receives byte counts (compressed bytes for a tarball, file bytes for a directory).
    """
    path = Path(path)
    report = Report(bundle=path)
    if path.is_dir():
        if not os.access(path, os.R_OK | os.X_OK):
            raise BundleNotFound(f"cannot read the directory {path}: permission denied. Run as a user who can "
                                 "read the whole bundle.")
        scan = _scan_dir(find_top_dir(path), report, progress)
        sums, sig = scan.sums, scan.sig
    elif path.is_file():
        try:
            tar = is_tar_file(path)
        except OSError as e:
            raise BundleNotFound(f"cannot read {path}: {e.strerror}. Run as a user who can read it.") from None
        if not tar:
            raise VerifyError(f"{path} is neither a directory nor a tar archive (.tar, .tar.gz or .tar.xz). Give "
                              "the bundle tarball as written by `bundler build`, or its unpacked directory.")
        tscan = _scan_tar(path, report, progress)
        if tscan.unreadable:
            return report
        _check_against_sums(tscan, report)
        sums, sig = tscan.sums, tscan.sig
    elif path.exists():
        raise VerifyError(f"{path} is neither a directory nor a regular file (a device, pipe or socket). Give the "
                          "bundle tarball or its unpacked directory.")
    else:
        raise BundleNotFound(f"{path} does not exist. Give the bundle tarball or its unpacked directory.")
    if key is not None:
        if sig is None:
            report.add(SIG, f"missing, but a key was given: the bundle is not signed (or the signature was removed). "
                            f"Use the signed bundle, or leave out --key to check only {SUMS}")
        elif sums is not None:
            try:
                report.signed_by = check_signature(sums, sig, Path(key))
            except _SignatureBad as e:
                report.add(SIG, f"not a valid signature of {SUMS} by the key in {key} ({e}): the bundle was "
                                "changed after signing, or signed with another key")
    return report
