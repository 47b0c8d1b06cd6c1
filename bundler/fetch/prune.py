"""`bundler cache prune`: drop what recent builds did not use, and every leftover of interrupted ones.

Running builds are respected (see lease.py): while any build holds a lease, prune keeps what those builds
named or touched since they started, and leaves partial downloads, unpacked metadata and resolved plans alone. "Freed"
counts each inode once, and only when its last link goes (a blob hard-linked into a bundle directory
frees nothing).
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from .cache import Cache
from .lease import live_builds

# derived files too: plans (rpm/plancache.py), manifests (manifest/parsed.py), outputs (bundle/reuse.py)
LEFTOVERS = ("partial", "staging", "unpacked", "extracted", "plans", "manifests", "outputs")
CLOCK_SLACK = 120.0  # seconds: mtimes on a network filesystem come from the server's clock


@dataclass
class PruneResult:
    removed: int = 0  # blobs removed
    freed: int = 0  # bytes whose last link was removed
    kept_for_builds: int = 0  # blobs kept because a running build uses them
    live_builds: int = 0

    def __iter__(self):  # noqa: ANN204 - `removed, freed = prune(...)`
        return iter((self.removed, self.freed))


class _Freed:
    """Bytes actually released: an inode counts once, when all its links are gone."""

    def __init__(self) -> None:
        self.seen: dict[tuple[int, int], list[int]] = {}  # inode -> [links removed, links when first seen]
        self.total = 0

    def unlinked(self, st: os.stat_result) -> None:
        entry = self.seen.setdefault((st.st_dev, st.st_ino), [0, st.st_nlink])
        entry[0] += 1
        if entry[0] == entry[1]:
            self.total += st.st_size


def prune(cache: Cache, older_than_days: float | None = None) -> PruneResult:
    """Remove blobs not used for older_than_days (None: all) and the leftovers of builds no longer running.

    Every cache hit refreshes a blob's mtime, so "not used" means no build read it in that time.
    """
    now = time.time()
    cutoff = None if older_than_days is None else now - older_than_days * 86400
    builds = live_builds(cache.root)
    keep_since = None if builds.since is None else builds.since - CLOCK_SLACK
    res = PruneResult(live_builds=builds.count)
    freed = _Freed()
    for p in sorted((cache.root / "blobs").glob("*/*")):
        try:
            st = p.lstat()
        except FileNotFoundError:
            continue
        if cutoff is not None and st.st_mtime >= cutoff:
            continue
        if builds.count and (f"{p.parent.name}:{p.name}" in builds.digests
                             or (keep_since is not None and st.st_mtime >= keep_since)):
            res.kept_for_builds += 1
            continue
        try:
            p.unlink()
        except FileNotFoundError:
            continue
        res.removed += 1
        freed.unlinked(st)
    if not builds.count:
        for name in LEFTOVERS:
            d: Path = cache.root / name
            if d.exists():
                for p in d.rglob("*"):
                    try:
                        st = p.lstat()
                    except FileNotFoundError:
                        continue  # a temporary entry renamed or removed meanwhile (manifests are parsed before a lease)
                    if stat.S_ISREG(st.st_mode):
                        freed.unlinked(st)
                shutil.rmtree(d, ignore_errors=True)
    res.freed = freed.total
    return res
