"""Content-addressed cache shared by RPMs, image blobs and files: a second build downloads nothing."""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .lease import Lease

ALGOS = ("sha256", "sha512", "sha384", "sha224", "sha1", "md5")
_HEX = re.compile(r"^[0-9a-f]+$")


def default_cache_dir() -> Path:
    """$AIRGAP_BUNDLER_CACHE, else $XDG_CACHE_HOME/airgap-bundler, else ~/.cache/airgap-bundler."""
    env = os.environ.get("AIRGAP_BUNDLER_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "airgap-bundler"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


class Cache:
    """blobs/<algo>/<hex> for finished, verified content; partial/ for downloads in flight.

    A blob only ever appears under blobs/ by an atomic rename after its digest was checked, so a
    reader never sees a half-written or unverified file.
    """

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def _check(self, algo: str, hexdigest: str) -> None:
        if algo not in ALGOS or not _HEX.match(hexdigest):
            raise ValueError(f"bad digest {algo}:{hexdigest}")

    def path(self, algo: str, hexdigest: str) -> Path:
        self._check(algo, hexdigest)
        return self.root / "blobs" / algo / hexdigest

    def get(self, algo: str, hexdigest: str) -> Path | None:
        """The cached file, or None; a hit refreshes its mtime so `cache prune --older-than` keeps it."""
        p = self.path(algo, hexdigest)
        if not p.is_file():
            return None
        try:
            os.utime(p)
        except OSError:
            pass
        return p

    def partial(self, algo: str, hexdigest: str) -> Path:
        self._check(algo, hexdigest)
        d = self.root / "partial"
        d.mkdir(parents=True, exist_ok=True)
        return d / f"{algo}-{hexdigest}"

    def commit(self, partial: Path, algo: str, hexdigest: str) -> Path:
        """Move a verified partial file into place (atomic: same filesystem)."""
        dest = self.path(algo, hexdigest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, dest)
        return dest

    def try_lock(self, algo: str, hexdigest: str) -> int | None:
        """The writer lock of one digest (flock on locks/<algo>-<hex>), or None if another thread or process
        holds it. The kernel drops it when the holder dies, so a killed build never blocks the next one.

        Lock files stay (empty): unlinking one while another writer waits on it would split the lock.
        """
        self._check(algo, hexdigest)
        d = self.root / "locks"
        d.mkdir(parents=True, exist_ok=True)
        fd = os.open(d / f"{algo}-{hexdigest}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def unlock(self, fd: int) -> None:
        os.close(fd)  # closing the only descriptor of the open file releases its flock

    def temp(self, kind: str) -> Path:
        """A new file under partial/ that only this writer uses (content whose digest is not known yet).

        Such files of writers that were killed (their process is gone, and the file is an hour old) are removed.
        """
        d = self.root / "partial"
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob(f"{kind}-*-*-*"):
            try:
                pid = int(old.name.split("-")[1])
                stale = time.time() - old.stat().st_mtime > 3600
            except (ValueError, OSError):
                continue
            if stale and not _alive(pid):
                old.unlink(missing_ok=True)
        fd, name = tempfile.mkstemp(dir=d, prefix=f"{kind}-{os.getpid()}-{threading.get_ident()}-")
        os.close(fd)
        return Path(name)

    def size(self) -> tuple[int, int]:
        """(number of blobs, total bytes)."""
        count = total = 0
        for p in (self.root / "blobs").glob("*/*"):
            count += 1
            total += p.stat().st_size
        return count, total

    # ---- eviction and leases (the write phase and `cache prune`) ----------------------------------------------

    def evict(self, algo: str, hexdigest: str) -> bool:
        """Drop a blob found not to match its digest (bit rot, tampering), so the next fetch downloads it."""
        try:
            self.path(algo, hexdigest).unlink()
        except FileNotFoundError:
            return False
        return True

    def lease(self) -> Lease:
        """This build's claim on the cache (a context manager) that `cache prune` respects."""
        from .lease import Lease

        return Lease(self.root)
