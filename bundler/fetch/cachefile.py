"""Derived files kept in the cache (.solv, resolved plans, parsed manifests, bundle records): written atomically and
best effort, read back only whole.

Such a file is never needed: losing one costs a recomputation. So a write that fails (a read-only cache, a full
disk, a concurrent prune) is skipped, never an error; the temporary name is per process and thread, so concurrent
builds on one cache never share one, and readers see either the old file or the new one. A "sealed" file starts
with a line {"format": N, "sha256": ...} over the rest, so truncation, an edit or another format reads as damaged.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

from .. import __version__


def write_best_effort(dest: Path, write: Callable[[Path], bool]) -> None:
    """write(tmp) then rename tmp to dest when it returns True; any OSError only skips the file."""
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}-{threading.get_ident()}")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if write(tmp):
            os.replace(tmp, dest)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def write_bytes(dest: Path, data: bytes) -> None:
    """dest := data, atomically, best effort."""

    def write(tmp: Path) -> bool:
        tmp.write_bytes(data)
        return True

    write_best_effort(dest, write)


def write_sealed(dest: Path, fmt: int, body: bytes) -> None:
    """body behind its format and sha256 (see read_sealed)."""
    head = json.dumps({"format": fmt, "sha256": hashlib.sha256(body).hexdigest()}).encode()
    write_bytes(dest, head + b"\n" + body)


def read_sealed(path: Path, fmt: int) -> bytes | None:
    """The body of a sealed file; None when there is none; ValueError when it does not read back whole."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    head, _, body = raw.partition(b"\n")
    try:
        meta = json.loads(head)
    except ValueError:
        raise ValueError("it is not a cache entry") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise ValueError(f"it is not a format {fmt} entry")
    if meta.get("sha256") != hashlib.sha256(body).hexdigest():
        raise ValueError("its checksum does not match its content")
    return body


@functools.cache
def code_identity(files: tuple[Path, ...], modules: tuple[str, ...] = ()) -> str:
    """The sha256 of the code a derived file comes from, so a change of code is a miss, never a stale answer: the
    builder's version, these source files (name and bytes: an edited checkout counts) and, for installed modules,
    where they are, their size and mtime (an upgrade replaces them), found without importing them."""
    import importlib.util

    h = hashlib.sha256(__version__.encode() + b"\0")
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec and spec.origin:
            st = os.stat(spec.origin)
            h.update(f"{spec.origin}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()
