"""`bundler cache prune`: drop what recent builds did not use, and every leftover of interrupted ones."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from .cache import Cache

LEFTOVERS = ("partial", "staging", "unpacked", "extracted")


def prune(cache: Cache, older_than_days: float | None = None) -> tuple[int, int]:
    """Remove blobs not used for older_than_days (None: all) and the leftovers; return (count, bytes freed).

    Every cache hit refreshes a blob's mtime, so "not used" means no build read it in that time.
    """
    cutoff = None if older_than_days is None else time.time() - older_than_days * 86400
    removed = freed = 0
    for p in sorted((cache.root / "blobs").glob("*/*")):
        st = p.stat()
        if cutoff is None or st.st_mtime < cutoff:
            p.unlink()
            removed += 1
            freed += st.st_size
    for name in LEFTOVERS:
        d: Path = cache.root / name
        if d.exists():
            for p in d.rglob("*"):
                if p.is_file():
                    freed += p.stat().st_size
            shutil.rmtree(d)
    return removed, freed
