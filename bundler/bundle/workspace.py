"""A build's working files in the output directory: the staging tree, the partial tarball, their cleanup.

Staging lives beside the bundle, not in the cache, so a read-only shared cache still builds and the cache
never holds a build's scratch files. Names carry the PID (for people) and a random token (two builds in one
process): `.NAME.staging-PID-TOKEN` (a directory) and `.NAME.FMT.partial-PID-TOKEN` (the tarball being
written). The staging directory is flock'ed by its build for its whole life; it is created under a
temporary name and renamed only once locked, so a lock that can be taken means its build is gone (killed,
crashed), whatever PIDs were reused since. The partial tarball lives only while its staging tree does.
A read-only cache's temporary files (unpinned downloads, unpacked kubeadm) go to `.NAME.scratch-PID-TOKEN`,
removed at the end of the build; a killed build's one goes with its other leftovers.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import secrets
import shutil
from pathlib import Path

from ..errors import BundlerError

DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _leftover_re(base: str) -> re.Pattern[str]:
    fmt = r"(?:\.tar|\.tar\.gz|\.tar\.xz)?"
    return re.compile(rf"^\.{re.escape(base)}{fmt}\.(staging|partial|new|scratch)-(\d+)(?:-([0-9a-f]+))?$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _staging_live(path: Path, pid: int) -> bool:
    """True while the build that owns this staging directory runs (its flock is held)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    except OSError:
        return _pid_alive(pid)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # no flock here (some network filesystems): the PID decides
        return _pid_alive(pid)
    finally:
        os.close(fd)
    return False


def clean_stale(out_dir: Path, base: str) -> list[Path]:
    """Remove staging trees and partial tarballs of THIS bundle left by builds that no longer run.

    Another live build of the same bundle keeps its files; other bundles' files are never looked at.
    """
    if not out_dir.is_dir():
        return []
    pattern = _leftover_re(base)
    found = [(p, m) for p in out_dir.iterdir() if (m := pattern.match(p.name))]
    staging = {(m.group(2), m.group(3)): p for p, m in found if m.group(1) == "staging"}
    live = {key for key, p in staging.items() if _staging_live(p, int(key[0]))}
    removed = []
    for p, m in found:
        key = (m.group(2), m.group(3))
        if key in live:
            continue
        if (m.group(1) in ("new", "scratch") or m.group(3) is None) and _pid_alive(int(key[0])):
            continue  # not locked yet (a scratch dir can precede its staging tree), or an older builder's partial
            # (no token, no lock): spare it while its PID runs
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def clean_legacy_staging(cache_root: Path, base: str) -> None:
    """Older builders staged in cache/staging/NAME.PID: drop this bundle's trees whose build is gone."""
    d = cache_root / "staging"
    if not d.is_dir():
        return
    for p in d.iterdir():
        name, _, pid = p.name.rpartition(".")
        if name == base and pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


class Workspace:
    """This build's staging directory (locked while it exists) and the temporary name of its tarball."""

    def __init__(self, out_dir: Path, base: str):
        self.out_dir, self.base = out_dir, base
        self.suffix = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.staging = out_dir / f".{base}.staging-{self.suffix}"
        self.scratch = out_dir / f".{base}.scratch-{self.suffix}"  # a read-only cache's temporary files
        self._fd: int | None = None

    def partial(self, final: Path) -> Path:
        return self.out_dir / f".{final.name}.partial-{self.suffix}"

    def create(self) -> Path:
        """Make and lock the staging directory (locked before it gets a name another build would clean)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.out_dir / f".{self.base}.new-{self.suffix}"
        tmp.mkdir()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pass  # no flock on this filesystem: cleanup falls back to the PID
        os.rename(tmp, self.staging)
        self._fd = fd
        return self.staging

    def close(self, *, remove: bool = True) -> None:
        """Remove what is left of the staging tree and the partial tarball, then release the lock."""
        if remove:
            for p in self.out_dir.glob(f".*.partial-{self.suffix}"):
                p.unlink(missing_ok=True)
            shutil.rmtree(self.staging, ignore_errors=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on path's filesystem (the nearest existing parent)."""
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    st = os.statvfs(p)
    return st.f_bavail * st.f_frsize


def ensure_space(path: Path, need: int, what: str, fix: str) -> None:
    """Refuse to start a write that cannot finish: one paragraph naming the place, the need and a way out."""
    free = free_bytes(path)
    if free < need:
        raise BundlerError(
            f"not enough disk space for {what} in {path}: about {human(need)} is needed there but only "
            f"{human(free)} is free. Nothing was written. {fix}"
        )


def disk_error(e: OSError, need: int | None = None) -> BundlerError:
    """An OSError from the disk (full, read-only, no permission) as an operator message naming the path."""
    where = e.filename or "the output or cache directory"
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        amount = f" (the build needs about {human(need)} there)" if need else ""
        return BundlerError(
            f"the disk holding {where} is full{amount}; the build stopped and removed what it had written. Free "
            "space there, or point -o/--output or --cache at a larger filesystem, then run the same command.")
    if e.errno == errno.EROFS:
        return BundlerError(
            f"{where} is on a read-only filesystem, and the build had to write there. A read-only cache works only "
            "when it already holds everything the build needs (fill it from a build with write access, e.g. with "
            "--locked); the output directory (-o) must be writable.")
    return BundlerError(
        f"no permission to write {where} ({os.strerror(e.errno or 0)}). Use a directory you can write to "
        "(-o/--output, --cache), or fix its permissions.")
