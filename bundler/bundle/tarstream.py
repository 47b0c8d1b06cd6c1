"""Read a bundle tarball once, sequentially, decompressing in bounded steps: no seeking, constant memory, no
decompression bomb. Shared by verify (tarscan.py) and inspect."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

#: Control files are read into memory; anything bigger than this is not a real SHA256SUMS/.asc/bundle.json.
MAX_CONTROL_FILE = 256 << 20
#: Exceptions a truncated or corrupted tar/gzip/xz stream raises while being read.
STREAM_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError)


class _CountingReader(io.RawIOBase):
    """Reports compressed bytes consumed, so progress is against the tarball's size on disk."""

    def __init__(self, f: BinaryIO, progress: Callable[[int], None] | None):
        self._f, self._progress, self.count = f, progress, 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.count += len(data)
        if self._progress and data:
            self._progress(len(data))
        return data

    def readinto(self, b: Any) -> int:  # Any: typeshed's WriteableBuffer has no public name before Python 3.12
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def is_tar_file(path: Path) -> bool:
    """By magic, not by name: gzip, xz, bzip2, or a plain tar header ('ustar' at offset 257)."""
    with open(path, "rb") as f:
        head = f.read(512)
    return (head.startswith(b"\x1f\x8b") or head.startswith(b"\xfd7zXZ\x00") or head.startswith(b"BZh")
            or head[257:262] == b"ustar")


def open_tar_stream(path: Path, progress: Callable[[int], None] | None = None) -> tuple[tarfile.TarFile, BinaryIO]:
    """Open for one sequential pass: no seeking, constant memory whatever the size.

    We decompress ourselves (GzipFile/LZMAFile/BZ2File bound their output per read) instead of tarfile's 'r|gz',
    which inflates a whole input buffer at once: a small hostile tarball of zeros would expand to gigabytes.
    """
    raw = open(path, "rb")  # closed by the caller through the returned handle
    try:
        head = raw.read(6)
        raw.seek(0)
        counted = io.BufferedReader(_CountingReader(raw, progress), 1 << 20)
        stream: io.BufferedIOBase
        if head.startswith(b"\x1f\x8b"):
            stream = gzip.GzipFile(fileobj=counted, mode="rb")
        elif head.startswith(b"\xfd7zXZ\x00"):
            stream = lzma.LZMAFile(counted, "rb")
        elif head.startswith(b"BZh"):
            stream = bz2.BZ2File(counted, "rb")
        else:
            stream = counted
        return tarfile.open(fileobj=stream, mode="r|", bufsize=1 << 20), raw
    except BaseException:
        raw.close()
        raise


def strip_dot(name: str) -> str:
    """'./top/x' and 'top//x/' name the same member as 'top/x' (tar -C dir . writes the former)."""
    while name.startswith("./"):
        name = name[2:]
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return ("/" if name.startswith("/") else "") + "/".join(parts)
