"""Build leases on the cache: what `bundler cache prune` must leave alone while builds run.

A build holds an flock on its own lease file, cache/locks/build-PID-TOKEN.lease, for its whole run; the file
says when the build started and, once known, which digests it will ship. The file is locked before it
gets its `.lease` name, so a lease whose lock can be taken belongs to a build that is gone. While a lease
is live, prune keeps every blob the build named and every blob used since the build started (a cache hit
refreshes the mtime, a download is new), and leaves partial downloads and other leftovers alone.
A read-only cache gets no lease: nothing can prune it.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

LOCKS = "locks"


class Lease:
    """This build's claim on the cache; a context manager, released (and its file removed) on exit."""

    def __init__(self, root: Path):
        self.dir = root / LOCKS
        self.path: Path | None = None
        self._fd: int | None = None
        self.started = time.time()

    def acquire(self) -> Lease:
        token = f"{os.getpid()}-{secrets.token_hex(4)}"
        tmp = self.dir / f".build-{token}.new"
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError:
            return self  # read-only or foreign cache: no lease, and no prune can run there either
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.path = self.dir / f"build-{token}.lease"
            self._fd = fd
            self._write([])
            os.rename(tmp, self.path)
        except OSError:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            self.path = self._fd = None
        return self

    def _write(self, digests: list[str]) -> None:
        assert self._fd is not None
        data = json.dumps({"pid": os.getpid(), "started": self.started, "digests": digests}).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def record(self, digests: Iterable[str]) -> None:
        """Name the blobs this build ships ("algo:hex"), so a prune keeps them even if not used yet."""
        if self._fd is not None:
            try:
                self._write(sorted(set(digests)))
            except OSError:
                pass

    def release(self) -> None:
        if self._fd is not None:
            if self.path is not None:
                self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass
class LiveBuilds:
    """What the running builds hold: the earliest start time and every digest they named."""

    count: int = 0
    since: float | None = None
    digests: set[str] = field(default_factory=set)


def live_builds(root: Path) -> LiveBuilds:
    """Scan cache/locks: remove the leases of builds that are gone, sum up the live ones."""
    out = LiveBuilds()
    d = root / LOCKS
    if not d.is_dir():
        return out
    for p in sorted(d.glob("build-*.lease")):
        try:
            fd = os.open(p, os.O_RDWR)  # writable: NFS emulates flock with POSIX locks, which need it
        except FileNotFoundError:
            continue
        except OSError:
            fd = os.open(p, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # held (or no way to tell here): count it as a running build
                live = True
            else:
                live = False
                p.unlink(missing_ok=True)  # its build is gone
            if live:
                out.count += 1
                try:
                    info = json.loads(os.pread(fd, 1 << 24, 0) or b"{}")
                except ValueError:
                    info = {"started": 0.0}  # caught mid-rewrite: keep everything this time
                started = float(info.get("started") or 0.0)
                out.since = started if out.since is None else min(out.since, started)
                out.digests.update(str(x) for x in info.get("digests") or [])
        finally:
            os.close(fd)
    return out
