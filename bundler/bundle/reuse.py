"""An unchanged bundle is not written again: a rebuild checks the tarball it wrote before instead of rewriting it.

make's rule, with a content check in place of a timestamp. The tarball is a pure function of the staging tree
(each member's path, mode and content), the format and the writer, so its key is the sha256 of those; a payload
member's content is named by the digest bundle.json records for it (exactly what the write would check it
against), every other member (bundle.json, repodata, the installer, the SBOMs: small) is hashed. After a write,
CACHE/outputs/ records the key with the tarball's sha256 and size; a later build of the same key into the same
path reuses the tarball only if it is still there, of that size, and every one of its bytes hashes to the recorded
sha256 (one read, nothing written). A signed bundle is always written (its signature is made anew), and so is one
whose record cannot be kept (a read-only cache).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from .. import __version__
from .sums import SIG, SUMS, sha256_file

FORMAT = 1
DIR = "outputs"
_WRITER = ("tarball.py", "tarstream.py", "sums.py", "reuse.py")


def output_key(tree: Path, expected: Mapping[str, str], omitted: Mapping[str, str], *, fmt: str, top: str,
               epoch: int, level: int) -> str:
    """The sha256 naming what write_tarball would produce from tree (see the module docstring)."""
    h = hashlib.sha256(json.dumps([FORMAT, __version__, _writer_identity(), fmt, top, epoch, level,
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


def _writer_identity() -> str:
    here = Path(__file__).parent
    return hashlib.sha256(b"".join((here / n).read_bytes() for n in _WRITER)).hexdigest()


def _record_path(cache_root: Path, final: Path) -> Path:
    return cache_root / DIR / f"{hashlib.sha256(str(final.resolve()).encode()).hexdigest()}.json"


def reusable(cache_root: Path, final: Path, key: str, progress: Callable[[int], None] | None = None) -> str | None:
    """The sha256 of final when it is the tarball this key would produce (checked byte by byte), else None."""
    try:
        rec = json.loads(_record_path(cache_root, final).read_text())
        if rec.get("format") != FORMAT or rec.get("key") != key:
            return None
        with open(final, "rb", buffering=0) as f:
            if os.fstat(f.fileno()).st_size != rec["size"]:
                return None
            h, buf = hashlib.sha256(), bytearray(1 << 20)
            view = memoryview(buf)
            while n := f.readinto(buf):
                h.update(view[:n])
                if progress:
                    progress(n)
        return rec["sha256"] if h.hexdigest() == rec["sha256"] else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def record(cache_root: Path, final: Path, key: str, sha256: str) -> None:
    """Remember what final was written from; best effort (a read-only cache only means no reuse)."""
    path = _record_path(cache_root, final)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}-{threading.get_ident()}")
    try:
        body = json.dumps({"format": FORMAT, "key": key, "sha256": sha256, "size": final.stat().st_size,
                           "path": str(final.resolve())})
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(body)
        os.replace(tmp, path)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def forget(cache_root: Path, final: Path) -> None:
    """Drop final's record (before it is replaced: a record never outlives the bytes it describes)."""
    with contextlib.suppress(OSError):
        _record_path(cache_root, final).unlink()
