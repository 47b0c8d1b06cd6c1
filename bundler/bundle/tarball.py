"""Writing the bundle tarball: reproducible, streamed from the staging tree, hashed in the same pass.

Entry order is fixed: the top directory, bundle.json (so `bundler inspect` stops reading early), every
other file sorted by path, then SHA256SUMS (and its signature). Metadata is normalised (mtime, owner,
mode) and the gzip header carries no name or time, so the same inputs give a byte-identical tarball.

tar.gz is one ordinary gzip member whose deflate blocks follow the tar members: members that are already
compressed (image layers, RPMs, archives: recognised by their magic bytes) go into "stored" blocks, copied at
memory speed instead of being squeezed for nothing at 32 s/GB; everything else is deflated (level 6, level 1
for large files). Any gzip reader (CentOS 7's `tar xzf`, Python's tarfile even in 'r|gz' mode) reads it.
The choice depends only on content, so the output stays byte-for-byte reproducible.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import os
import stat
import struct
import tarfile
import zlib
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, cast

from .sums import DigestMismatch, format_sums, sha256_stream

FORMATS = ("tar.gz", "tar", "tar.xz")
DEFAULT_LEVEL = 6  # deflate level of members that are not already compressed (see member_level)
DEFAULT_EPOCH = 1577836800  # 2020-01-01T00:00:00Z, overridden by SOURCE_DATE_EPOCH
CHUNK = 1 << 20


def source_epoch() -> int:
    return int(os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_EPOCH))


# gzip, xz, zstd, bzip2, RPM lead (its payload is compressed), zip
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd", b"BZh", b"\xed\xab\xee\xdb", b"PK\x03\x04")
STORE_MIN = 64 << 10  # smaller compressed files are deflated anyway: not worth a new gzip member
FAST_MIN = 1 << 20  # large uncompressed files (binaries) get level 1: most of the gain, several times faster
STORED = 0
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, mtime 0, OS unknown
_BLOCK = 0xFFFF


def member_level(path: Path, size: int, default: int) -> int:
    """STORED for already-compressed content, a faster level for large files, else default (content only)."""
    if size >= STORE_MIN:
        with open(path, "rb") as f:
            head = f.read(8)
        if head.startswith(_COMPRESSED_MAGIC):
            return STORED
    if size >= FAST_MIN and default > 1:
        return 1
    return default


class _Out(io.RawIOBase):
    """The tarball file, unbuffered (payload goes from our read buffer straight to the kernel), never short.

    write() loops until every byte is written: tarfile ignores short writes, and a regular file can return one
    as the disk fills; the next call then raises ENOSPC instead of the tarball silently losing bytes.
    """

    def __init__(self, fd: int):
        self.fd = fd
        self.pos = 0
        self.sha256 = hashlib.sha256()  # of the tarball itself, in the same pass (its .sha256 needs no re-read)

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.fd

    def tell(self) -> int:
        return self.pos

    def write(self, b: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self.writev([b])
        return len(b)

    def writev(self, parts: list[bytes | bytearray | memoryview]) -> None:
        if self.fd < 0:
            return  # detached (the tarball is finished or abandoned): a late finaliser writes nothing
        parts = [memoryview(p).cast("B") for p in parts if len(p)]
        for p in parts:
            self.sha256.update(p)
        while parts:
            n = os.writev(self.fd, parts[:1024])
            self.pos += n
            while parts and n >= len(parts[0]):
                n -= len(parts[0])
                parts.pop(0)
            if n:
                parts[0] = parts[0][n:]


class MixedGzip(io.RawIOBase):
    """A write-only gzip file, ONE member and one deflate stream, whose blocks change level as members change.

    Deflate lets a stream mix block types: at a level change the current zlib compressor is sync-flushed
    (its blocks end byte-aligned, not final) and the next run of data continues the same stream, either from
    a fresh compressor or as stored blocks (BTYPE 00: a 5-byte header per 64 KiB) framed here without zlib,
    which costs one crc32 per byte. Every gzip reader sees an ordinary single-member .gz.
    """

    def __init__(self, raw: _Out, level: int = 6):
        self.raw = raw
        self.level = level
        self._crc = 0
        self._total = 0
        self._comp: zlib._Compress | None = None
        self._pending = bytearray()  # stored run: bytes of the current block not yet full
        raw.write(_GZIP_HEADER)

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        """Uncompressed bytes written (tarfile keeps its offset with it)."""
        return self._total

    def set_level(self, level: int) -> None:
        if level != self.level:
            self._end_run()
            self.level = level

    def _end_run(self) -> None:
        """Close the current run byte-aligned and not final, so the next run continues the deflate stream."""
        if self._comp is not None:
            self.raw.write(self._comp.flush(zlib.Z_SYNC_FLUSH))
            self._comp = None
        elif self._pending:
            self._stored_blocks(memoryview(self._pending))
            self._pending = bytearray()

    def _stored_blocks(self, data: memoryview) -> None:
        """Frame data as non-final stored blocks and write them with one system call (no copy into a buffer)."""
        parts: list[bytes | bytearray | memoryview] = []
        for i in range(0, len(data), _BLOCK):
            block = data[i:i + _BLOCK]
            parts += [struct.pack("<BHH", 0, len(block), len(block) ^ 0xFFFF), block]
        self.raw.writev(parts)

    def write(self, b: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        data = memoryview(b).cast("B")
        n = len(data)
        if not n:
            return 0
        self._crc = zlib.crc32(data, self._crc)
        self._total += n
        if self.level != STORED:
            if self._comp is None:
                self._comp = zlib.compressobj(self.level, zlib.DEFLATED, -zlib.MAX_WBITS, 9)
            self.raw.write(self._comp.compress(data))
            return n
        if self._pending:  # top up the partial block first
            take = min(_BLOCK - len(self._pending), n)
            self._pending += data[:take]
            data = data[take:]
            if len(self._pending) < _BLOCK:
                return n
            self._stored_blocks(memoryview(self._pending))
            self._pending = bytearray()
        whole = len(data) - len(data) % _BLOCK
        self._stored_blocks(data[:whole])
        self._pending += data[whole:]
        return n

    def close(self) -> None:
        if not self.closed:
            if self._comp is not None:
                self.raw.write(self._comp.flush(zlib.Z_FINISH))  # its last block is the final one
            else:
                self._end_run()
                self.raw.write(b"\x01\x00\x00\xff\xff")  # an empty final stored block ends the stream
            self.raw.write(struct.pack("<II", self._crc, self._total & 0xFFFFFFFF))
        super().close()


class _HashingReader(io.RawIOBase):
    """Feeds a file to tarfile while hashing it and reporting progress: one read of every payload byte.

    The sha256 of a chunk runs on a helper thread (hashlib releases the GIL) while this thread compresses
    and writes it, so hashing overlaps the I/O instead of adding to it; at most one chunk is in flight.
    """

    def __init__(self, f: io.BufferedReader, h: hashlib._Hash, progress: Callable[[int], None] | None,
                 pool: ThreadPoolExecutor | None = None):
        self.f, self.h, self.progress, self.pool = f, h, progress, pool
        self._pending: Future[None] | None = None

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self._wait()
        if self.pool is not None and len(data) >= 1 << 16:
            self._pending = self.pool.submit(self.h.update, data)
        else:
            self.h.update(data)
        if self.progress and data:
            self.progress(len(data))
        return data

    def _wait(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def hexdigest(self) -> str:
        self._wait()
        return self.h.hexdigest()

    def readable(self) -> bool:
        return True


def _info(name: str, *, size: int = 0, directory: bool = False, executable: bool = False,
          epoch: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.mtime = epoch
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    if directory:
        ti.type, ti.mode = tarfile.DIRTYPE, 0o755
    else:
        ti.size, ti.mode = size, 0o755 if executable else 0o644
    return ti


def _walk(root: Path) -> tuple[list[str], list[str]]:
    """(directories, files) relative to root, sorted; symlinks are refused (a bundle holds none)."""
    dirs, files = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = Path(dirpath).relative_to(root)
        for d in dirnames:
            dirs.append((rel / d).as_posix())
        for f in filenames:
            p = Path(dirpath) / f
            if p.is_symlink() or not p.is_file():
                raise ValueError(f"{p}: bundles contain only regular files")
            files.append((rel / f).as_posix())
    return sorted(dirs), sorted(files)


def write_tarball(
    tree: Path,
    dest: Path,
    *,
    top: str,
    fmt: str = "tar.gz",
    sign: Callable[[bytes], bytes] | None = None,
    progress: Callable[[int], None] | None = None,
    compresslevel: int = DEFAULT_LEVEL,
    expected: Mapping[str, str] | None = None,
    on_written: Callable[[str], None] | None = None,
    omitted: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Write tree (the staging directory) as dest; return {relpath: sha256} as listed in SHA256SUMS.

    The caller writes to a temporary name and renames; SHA256SUMS/SHA256SUMS.asc in tree are ignored and
    regenerated here from what was actually written. expected ({relpath: sha256}, what bundle.json records)
    is checked in the same pass that writes each member: after a first mismatch the tarball is abandoned,
    the remaining expected members are only hashed (to name every bad one at once) and DigestMismatch is
    raised, so SHA256SUMS can never disagree with bundle.json. on_written receives the sha256 of dest itself,
    computed while writing. omitted ({relpath: sha256}) are files a delta bundle leaves out: listed in
    SHA256SUMS all the same (see bundle/delta.py).
    """
    expected = expected or {}
    epoch = source_epoch()
    dirs, files = _walk(tree)
    files = [f for f in files if f not in ("SHA256SUMS", "SHA256SUMS.asc")]
    if "bundle.json" in files:
        files.remove("bundle.json")
        files.insert(0, "bundle.json")
    sums: dict[str, str] = dict(omitted or {})
    with open(dest, "wb", buffering=0) as dest_file:
        raw = _Out(dest_file.fileno())
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256") as pool:
                _write_members(raw, tree, top, fmt, dirs, files, sums, expected, sign, progress, compresslevel,
                               epoch, pool)
            os.fsync(raw.fd)
            if on_written:
                on_written(raw.sha256.hexdigest())
        finally:
            raw.fd = -1  # a compressor finalised later by the garbage collector must not write to a reused fd
    return sums


def _write_members(raw: _Out, tree: Path, top: str, fmt: str, dirs: list[str], files: list[str],
                   sums: dict[str, str], expected: Mapping[str, str], sign: Callable[[bytes], bytes] | None,
                   progress: Callable[[int], None] | None, compresslevel: int, epoch: int,
                   pool: ThreadPoolExecutor) -> None:
    """Every member in order, through the chosen compressor, hashed (and checked) as it streams."""
    comp: MixedGzip | lzma.LZMAFile | None
    if fmt == "tar.gz":
        comp = MixedGzip(raw, compresslevel)
    elif fmt == "tar.xz":
        comp = lzma.LZMAFile(cast(BinaryIO, raw), "wb", preset=6)
    elif fmt == "tar":
        comp = None
    else:
        raise ValueError(f"unknown format {fmt}")
    out = comp if comp is not None else raw
    gz = comp if isinstance(comp, MixedGzip) else None
    # mode "w" (not "w|"): tarfile writes straight through, so a level switch lands exactly between members
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.copybufsize = CHUNK  # type: ignore[attr-defined]  # a TarFile attribute typeshed does not declare
        tar.addfile(_info(top, directory=True, epoch=epoch))
        for d in dirs:
            tar.addfile(_info(f"{top}/{d}", directory=True, epoch=epoch))
        bad: dict[str, tuple[str, str]] = {}
        for rel in files:
            path = tree / rel
            if bad:  # the tarball is lost already: only find the other bad members
                if rel in expected:
                    with open(path, "rb") as f:
                        actual = sha256_stream(f)
                    if actual != expected[rel]:
                        bad[rel] = (expected[rel], actual)
                continue
            st = path.stat()
            if gz is not None:
                gz.set_level(member_level(path, st.st_size, compresslevel))
            with open(path, "rb") as f:
                reader = _HashingReader(f, hashlib.sha256(), progress, pool)
                tar.addfile(
                    _info(f"{top}/{rel}", size=st.st_size, executable=bool(st.st_mode & stat.S_IXUSR),
                          epoch=epoch),
                    reader,
                )
            sums[rel] = reader.hexdigest()
            if rel in expected and sums[rel] != expected[rel]:
                bad[rel] = (expected[rel], sums[rel])
        listed = set(files)
        bad.update({rel: (digest, "nothing (the file is missing)") for rel, digest in expected.items()
                    if rel not in listed})
        if bad:
            raise DigestMismatch(bad)
        text = format_sums(sums).encode()
        if gz is not None:
            gz.set_level(compresslevel)
        tar.addfile(_info(f"{top}/SHA256SUMS", size=len(text), epoch=epoch), io.BytesIO(text))
        if sign is not None:
            sig = sign(text)
            tar.addfile(_info(f"{top}/SHA256SUMS.asc", size=len(sig), epoch=epoch), io.BytesIO(sig))
    if comp is not None:
        comp.close()
