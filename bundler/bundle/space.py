"""Disk space for a build: checked before each write (the plan knows the sizes), explained when a disk fills.

The output directory holds the staging tree (hard links from the cache where possible, else copies) and the
tarball being written; the cache receives the downloads. Each is checked with statvfs before the bytes
are written, so a build that cannot finish stops before writing instead of half-way through.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BundlerError
from .workspace import disk_error, ensure_space, free_bytes

if TYPE_CHECKING:
    from ..fetch.cache import Cache
    from ..files.fetch import FileRecord


class SpaceCheck:
    """Free-space checks before each write (the plan knows the sizes), and the message when a disk fills anyway."""

    FIX_OUT = "Free space there, or write the bundle elsewhere with -o/--output."
    FIX_CACHE = "Free space there (`bundler cache prune`), or use a larger cache with --cache."

    def __init__(self, out_dir: Path, cache: Cache, fmt: str = "tar.gz"):
        self.out_dir, self.cache, self.fmt = out_dir, cache, fmt
        self.links = True  # staging gets hard links from the cache (no payload copied)
        self.out_need = 0  # what the output directory needs, for the message if a write fails anyway

    def _probe_links(self, staging: Path) -> bool:
        blobs = self.cache.root / "blobs"
        probe = next((p for p in blobs.glob("*/*")), None) if blobs.is_dir() else None
        if probe is None:
            try:
                return os.stat(self.cache.root).st_dev == os.stat(staging).st_dev
            except OSError:
                return False
        try:
            os.link(probe, staging / ".link-probe")
        except OSError:
            return False
        (staging / ".link-probe").unlink()
        return True

    def before_download(self, packages: Sequence[Mapping[str, Any]], files: list[FileRecord], staging: Path) -> None:
        """Cache: the RPMs not cached yet. Output: the staging copies (if no hard links) plus the tarball."""
        self.links = self._probe_links(staging)
        missing = sum(p["size"] or 0 for p in packages if not self.cache.path(p["algo"], p["digest"]).is_file())
        ensure_space(self.cache.root, missing, "the package downloads (the cache)", self.FIX_CACHE)
        payload = sum(p["size"] or 0 for p in packages) + sum(f.size for f in files)
        self.more_output(payload)

    def more_output(self, payload: int) -> None:
        """payload more bytes will be shipped: staged (copied unless hard-linked), then written to the tarball."""
        self.out_need += payload * ((0 if self.links else 1) + (0 if self.fmt == "dir" else 1))
        ensure_space(self.out_dir, self.out_need, "the bundle (output directory)", self.FIX_OUT)

    def more_downloads(self, n: int) -> None:
        ensure_space(self.cache.root, n, "the image downloads (the cache)", self.FIX_CACHE)
        self.more_output(n)

    def before_write(self, staging: Path) -> int:
        """The tarball: every staged byte plus tar headers and a margin for compression overhead."""
        files = [p for p in staging.rglob("*") if p.is_file()]
        total = sum(p.stat().st_size for p in files)
        if self.fmt != "dir":
            need = total + total // 200 + 1536 * len(files) + (1 << 20)
            self.out_need = need
            ensure_space(self.out_dir, need, "the bundle (output directory)", self.FIX_OUT)
        return total

    def error(self, e: OSError) -> BundlerError:
        """The disk error as one paragraph; a write() that hit a full disk names no file: name the fuller one."""
        if e.filename2 is not None and e.errno in (errno.ENOSPC, errno.EDQUOT):
            e.filename = e.filename2  # a copy (shutil) names its source first: the destination is what filled up
        if e.filename is None and e.errno in (errno.ENOSPC, errno.EDQUOT):
            try:
                out_free, cache_free = free_bytes(self.out_dir), free_bytes(self.cache.root)
            except OSError:
                out_free, cache_free = 0, 1
            e.filename = str(self.out_dir if out_free <= cache_free else self.cache.root)
        return disk_error(e, self.out_need if str(e.filename).startswith(str(self.out_dir)) else None)
