"""Content-addressed cache shared by RPMs, image blobs and files: a second build downloads nothing."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
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

    A cache this process cannot write (a shared, pre-filled cache on a read-only mount) is still read: files
    whose digest is not known in advance (unpinned downloads, extracted members, scratch trees) then go to a
    private scratch directory outside it (see `scratch`), which the build removes at its end.
    """

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self._writable: bool | None = None
        self._scratch_at: Path | None = None  # where scratch() makes its directory (None: the system's temp dir)
        self._scratch: Path | None = None
        self._scratch_lock = threading.Lock()

    @property
    def writable(self) -> bool:
        """Can this process write into the cache? Asked once, without writing (access(2) answers EROFS and
        EACCES); a root that does not exist yet counts as its nearest existing parent."""
        if self._writable is None:
            p = self.root
            while not p.exists() and p != p.parent:
                p = p.parent
            self._writable = os.access(p, os.W_OK | os.X_OK)
        return self._writable

    def scratch_in(self, path: Path) -> None:
        """Make `scratch` use this directory (created when first needed): a build puts it in its output
        directory, beside its staging tree, so what it holds can be hard-linked into the bundle."""
        self._scratch_at = path

    def scratch(self) -> Path:
        """A private directory outside the cache for temporary files a read-only cache cannot take (see
        scratch_in; else one in the system's temp dir); `close_scratch` removes it."""
        with self._scratch_lock:
            if self._scratch is None:
                if self._scratch_at is not None:
                    self._scratch_at.mkdir(parents=True)
                    self._scratch = self._scratch_at
                else:
                    self._scratch = Path(tempfile.mkdtemp(prefix="airgap-bundler-"))
            return self._scratch

    def close_scratch(self) -> None:
        """Remove the scratch directory and everything in it (the end of a build, also a failed one); the next
        user of this cache picks its own place again."""
        with self._scratch_lock:
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = self._scratch_at = None

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
        """Move a verified partial file into place (atomic: same filesystem).

        A read-only cache keeps its copy when it has one (the temp file goes); else the file stays in the scratch
        directory under its digest, for this build only."""
        if not self.writable:
            hit = self.get(algo, hexdigest)
            if hit is not None:
                partial.unlink(missing_ok=True)
                return hit
            dest = self.scratch() / f"{algo}-{hexdigest}"
            os.replace(partial, dest)
            return dest
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
        A cache this process cannot write gets the file in the scratch directory instead.
        """
        if not self.writable:
            fd, name = tempfile.mkstemp(dir=self.scratch(), prefix=f"{kind}-")
            os.close(fd)
            return Path(name)
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
