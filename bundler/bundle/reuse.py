"""An unchanged bundle is not written again: a rebuild checks the tarball it wrote before instead of rewriting it.

make's rule, with a content check in place of a timestamp. The tarball is a pure function of the staging tree
(each member's path, mode and content), the format and the writer, so its key is the sha256 of those; a payload
member's content is named by the digest bundle.json records for it (exactly what the write would check it
against), every other member (bundle.json, repodata, the installer, the SBOMs: small) is hashed. After a write,
CACHE/outputs/ records the key with the tarball's sha256 and size; a later build of the same key into the same
path reuses the tarball only if it is still there, of that size, and every one of its bytes hashes to the recorded
sha256 (one read, nothing written). That first check also records the sha256 of each 64 MiB segment (computed on a
second thread from the same reads), so later checks hash the segments on two threads at once: every byte is still
checked against a digest taken from bytes that matched the whole-file sha256. A signed bundle is always written
(its signature is made anew), and so is one whose record cannot be kept (a read-only cache).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from ..fetch.cachefile import code_identity, write_bytes
from .sums import SIG, SUMS, sha256_file

FORMAT = 1
DIR = "outputs"
SEGMENT = 64 << 20  # checked on two threads once known: 16 segments per GiB
CHUNK = 1 << 20
_WRITER = ("tarball.py", "tarstream.py", "sums.py", "reuse.py")


def output_key(tree: Path, expected: Mapping[str, str], omitted: Mapping[str, str], *, fmt: str, top: str,
               epoch: int, level: int) -> str:
    """The sha256 naming what write_tarball would produce from tree (see the module docstring)."""
    here = Path(__file__).parent
    writer = code_identity(tuple(here / n for n in _WRITER))
    h = hashlib.sha256(json.dumps([FORMAT, writer, fmt, top, epoch, level,
                                   sorted(omitted.items())]).encode())
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(tree)
        h.update(f"d\0{rel_dir.as_posix()}\0".encode())
        for name in sorted(filenames):
            rel = (rel_dir / name).as_posix()
            if rel in (SUMS, SIG):
                continue  # written from the members' sums, which the key covers
            path = Path(dirpath) / name
            st = path.lstat()
            digest = expected.get(rel) or sha256_file(path)
            h.update(f"f\0{rel}\0{st.st_mode & 0o777:o}\0{st.st_size}\0{digest}\0".encode())
    return h.hexdigest()


def _record_path(cache_root: Path, final: Path) -> Path:
    return cache_root / DIR / f"{hashlib.sha256(str(final.resolve()).encode()).hexdigest()}.json"


def candidate(cache_root: Path, final: Path, key: str) -> dict | None:
    """The record of final when it says final was written from this key and final still has its size (cheap:
    nothing is read yet); else None."""
    try:
        rec = json.loads(_record_path(cache_root, final).read_text())
        if rec.get("format") == FORMAT and rec.get("key") == key and final.stat().st_size == rec["size"]:
            return rec
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def reusable(cache_root: Path, final: Path, rec: dict, progress: Callable[[int], None] | None = None) -> str | None:
    """The sha256 of final when every byte of it checks against the candidate record rec, else None."""
    try:
        with open(final, "rb", buffering=0) as f:
            size = os.fstat(f.fileno()).st_size
            if size != rec["size"]:
                return None
            segments = rec.get("segments")
            if isinstance(segments, list) and len(segments) == -(-size // SEGMENT):
                return rec["sha256"] if _segments_match(f.fileno(), size, segments, progress) else None
            whole, segments = _whole_and_segments(f, progress)
        if whole != rec["sha256"]:
            return None
        write_bytes(_record_path(cache_root, final), json.dumps({**rec, "segments": segments}).encode())
        return whole
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _whole_and_segments(f: BinaryIO, progress: Callable[[int], None] | None) -> tuple[str, list[str]]:
    """(sha256 of the file, sha256 of each SEGMENT) from one read: the segments on a helper thread."""
    whole, segments = hashlib.sha256(), []
    seg = [hashlib.sha256()]
    queued: deque[Future[None]] = deque()
    at = 0

    def fold(piece: bytes, closes: bool) -> None:  # runs on the one helper, in submission order
        seg[0].update(piece)
        if closes:
            segments.append(seg[0].hexdigest())
            seg[0] = hashlib.sha256()

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="segments") as pool:
        while chunk := f.read(CHUNK):
            whole.update(chunk)
            n = len(chunk)
            while chunk:  # a read may cross a segment boundary: split it there
                take = min(len(chunk), SEGMENT - at % SEGMENT)
                at += take
                queued.append(pool.submit(fold, chunk[:take], at % SEGMENT == 0))
                chunk = chunk[take:]
            while len(queued) > 2:
                queued.popleft().result()
            if progress:
                progress(n)
        while queued:
            queued.popleft().result()
    if at % SEGMENT:
        segments.append(seg[0].hexdigest())
    return whole.hexdigest(), segments


def _segments_match(fd: int, size: int, segments: list[str], progress: Callable[[int], None] | None) -> bool:
    """Every segment hashes to its recorded digest; two threads (hashlib and pread release the GIL)."""

    def digest(i: int) -> str:
        h, buf = hashlib.sha256(), bytearray(CHUNK)
        view = memoryview(buf)
        at, end = i * SEGMENT, min((i + 1) * SEGMENT, size)
        while at < end:
            n = os.preadv(fd, [view[:min(CHUNK, end - at)]], at)
            if n <= 0:
                raise OSError("the bundle got shorter while it was checked")
            h.update(view[:n])
            at += n
        return h.hexdigest()

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="segments") as pool:
        for i, got in enumerate(pool.map(digest, range(len(segments)))):
            if got != segments[i]:
                return False
            if progress:
                progress(min(SEGMENT, size - i * SEGMENT))
    return True


def record(cache_root: Path, final: Path, key: str, sha256: str) -> None:
    """Remember what final was written from; best effort (a read-only cache only means no reuse)."""
    with contextlib.suppress(OSError):
        rec = {"format": FORMAT, "key": key, "sha256": sha256, "size": final.stat().st_size,
               "path": str(final.resolve())}
        write_bytes(_record_path(cache_root, final), json.dumps(rec).encode())


def forget(cache_root: Path, final: Path) -> None:
    """Drop final's record (before it is replaced: a record never outlives the bytes it describes)."""
    with contextlib.suppress(OSError):
        _record_path(cache_root, final).unlink()
