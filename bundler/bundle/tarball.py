"""Writing the bundle tarball: reproducible, streamed from the staging tree, hashed in the same pass.

Entry order is fixed: the top directory, bundle.json (so `bundler inspect` stops reading early), every
other file sorted by path, then SHA256SUMS (and its signature). Metadata is normalised (mtime, owner,
mode) and the gzip header carries no name or time, so the same inputs give a byte-identical tarball.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import os
import stat
import tarfile
from collections.abc import Callable, Mapping
from pathlib import Path

from .sums import DigestMismatch, format_sums, sha256_stream

FORMATS = ("tar.gz", "tar", "tar.xz")
DEFAULT_EPOCH = 1577836800  # 2020-01-01T00:00:00Z, overridden by SOURCE_DATE_EPOCH
CHUNK = 1 << 20


def source_epoch() -> int:
    return int(os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_EPOCH))


class _HashingReader(io.RawIOBase):
    """Feeds a file to tarfile while hashing it and reporting progress: one read of every payload byte."""

    def __init__(self, f: io.BufferedReader, h: hashlib._Hash, progress: Callable[[int], None] | None):
        self.f, self.h, self.progress = f, h, progress

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.h.update(data)
        if self.progress and data:
            self.progress(len(data))
        return data

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
    compresslevel: int = 6,
    expected: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Write tree (the staging directory) as dest; return {relpath: sha256} as listed in SHA256SUMS.

    The caller writes to a temporary name and renames; SHA256SUMS/SHA256SUMS.asc in tree are ignored and
    regenerated here from what was actually written. expected ({relpath: sha256}, what bundle.json records)
    is checked in the same pass that writes each member: after a first mismatch the tarball is abandoned,
    the remaining expected members are only hashed (to name every bad one at once) and DigestMismatch is
    raised, so SHA256SUMS can never disagree with bundle.json.
    """
    expected = expected or {}
    epoch = source_epoch()
    dirs, files = _walk(tree)
    files = [f for f in files if f not in ("SHA256SUMS", "SHA256SUMS.asc")]
    if "bundle.json" in files:
        files.remove("bundle.json")
        files.insert(0, "bundle.json")
    sums: dict[str, str] = {}
    with open(dest, "wb") as raw:
        if fmt == "tar.gz":
            comp = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=compresslevel)
        elif fmt == "tar.xz":
            comp = lzma.LZMAFile(raw, "wb", preset=6)
        elif fmt == "tar":
            comp = None
        else:
            raise ValueError(f"unknown format {fmt}")
        out = comp if comp is not None else raw
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
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
                h = hashlib.sha256()
                with open(path, "rb") as f:
                    tar.addfile(
                        _info(f"{top}/{rel}", size=st.st_size, executable=bool(st.st_mode & stat.S_IXUSR),
                              epoch=epoch),
                        _HashingReader(f, h, progress),
                    )
                sums[rel] = h.hexdigest()
                if rel in expected and sums[rel] != expected[rel]:
                    bad[rel] = (expected[rel], sums[rel])
            if bad:
                raise DigestMismatch(bad)
            text = format_sums(sums).encode()
            tar.addfile(_info(f"{top}/SHA256SUMS", size=len(text), epoch=epoch), io.BytesIO(text))
            if sign is not None:
                sig = sign(text)
                tar.addfile(_info(f"{top}/SHA256SUMS.asc", size=len(sig), epoch=epoch), io.BytesIO(sig))
        if comp is not None:
            comp.close()
        raw.flush()
        os.fsync(raw.fileno())
    return sums
