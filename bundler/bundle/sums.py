"""SHA256SUMS: the one checksum file both sides trust, in exactly the format `sha256sum -c` reads.

The writer (tarball.py) produces it with `format_sums`/`write_sums`; verify.py and the installer read it back.
Keeping both directions here guarantees that what we write is what we (and coreutils) parse.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

from ..errors import BundlerError

SUMS = "SHA256SUMS"
SIG = "SHA256SUMS.asc"
CHUNK = 1 << 20


class SumsError(BundlerError):
    """SHA256SUMS itself is malformed (so no file in the bundle can be trusted)."""


class DigestMismatch(Exception):
    """Files about to be shipped do not hash to what bundle.json records: {relpath: (expected, actual)}.

    Not an operator error by itself: the build evicts the cache entries, fetches them again and rewrites.
    """

    def __init__(self, bad: Mapping[str, tuple[str, str]]):
        self.bad = dict(bad)
        super().__init__(", ".join(sorted(self.bad)))


def sha256_stream(f: BinaryIO, chunk: int = CHUNK) -> str:
    """Hash a stream in fixed-size chunks: constant memory for multi-GiB images and archives."""
    h = hashlib.sha256()
    while True:
        block = f.read(chunk)
        if not block:
            return h.hexdigest()
        h.update(block)


def sha256_file(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as f:
        return sha256_stream(f)


def _escape(name: str) -> tuple[str, str]:
    if any(c in name for c in "\\\n\r"):
        return "\\", name.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    return "", name


def parse_sums(text: str, source: str = SUMS) -> dict[str, str]:
    """Map relative path -> lowercase hex digest, exactly as install.py reads it (one parser: the installer's
    bundle_rules.py, which `bundler verify` also uses); malformed or duplicate lines raise SumsError."""
    from .rules import bundle_rules

    rules = bundle_rules()
    try:
        return rules.parse_sums(text, source)
    except rules.SumsSyntaxError as e:
        raise SumsError(str(e)) from None


def seal_tree(tree: Path, expected: Mapping[str, str] | None = None,
              progress: Callable[[int], None] | None = None,
              omitted: Mapping[str, str] | None = None) -> dict[str, str]:
    """Hash every file of an unpacked bundle once, check it against expected, write SHA256SUMS; return the sums.
    `omitted` (a delta bundle's files left out, {relpath: sha256}) are listed without being present.

    Raises DigestMismatch naming every file that differs from expected (SHA256SUMS is then not written).
    """
    expected = expected or {}
    sums: dict[str, str] = dict(omitted or {})
    bad: dict[str, tuple[str, str]] = {}
    for p in sorted(tree.rglob("*")):
        rel = p.relative_to(tree).as_posix()
        if rel in (SUMS, SIG) or p.is_symlink() or not p.is_file():
            continue
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while block := f.read(CHUNK):
                h.update(block)
                if progress:
                    progress(len(block))
        sums[rel] = h.hexdigest()
        if rel in expected and sums[rel] != expected[rel]:
            bad[rel] = (expected[rel], sums[rel])
    bad.update({rel: (digest, "nothing (the file is missing)") for rel, digest in expected.items() if rel not in sums})
    if bad:
        raise DigestMismatch(bad)
    write_sums(tree / SUMS, sums)
    return sums


def format_sums(sums: Mapping[str, str]) -> str:
    """The SHA256SUMS text: sorted by path (reproducible bytes), two spaces, one trailing newline."""
    lines = []
    for name in sorted(sums):
        digest = sums[name]
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ValueError(f"not a lowercase sha256 hex digest for {name!r}: {digest!r}")
        prefix, written = _escape(name)
        lines.append(f"{prefix}{digest}  {written}\n")
    return "".join(lines)


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write via a temp file in the same directory and rename, so a crash never leaves a half file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_sums(path: Path, sums: Mapping[str, str]) -> Path:
    """Write `format_sums(sums)` to `path` atomically; returns the path (the file to sign next)."""
    return atomic_write_bytes(Path(path), format_sums(sums).encode("utf-8"))
