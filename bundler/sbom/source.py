"""The inventory of a bundle on disk: an unpacked directory (the build's staging tree included) or a tarball.

A tarball is read once, sequentially, without extracting it: bundle.json (written first), the image indexes it
names (a few KiB each) and the installer's files are all the SBOM needs beyond it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..bundle.dirscan import find_top_dir
from ..bundle.inspect import BOM, read_bundle_json
from ..bundle.tarstream import STREAM_ERRORS, is_tar_file, open_tar_stream, strip_dot
from .model import INDEX_TYPES, FileHash, Inventory, NoBundle, SbomError, collect

BLOBS = "images/blobs/sha256/"
MAX_INDEX = 4 << 20  # an image index is a few KiB; anything larger is not one we read into memory


def _is_installer(rel: str) -> bool:
    return (rel == "install.py" or rel.startswith("installer/")) and "/__pycache__/" not in f"/{rel}"


def _hash(read: Callable[[int], bytes]) -> FileHash:
    a, b, size = hashlib.sha1(), hashlib.sha256(), 0  # SPDX requires SHA-1 for files; not used for trust
    while block := read(1 << 20):
        a.update(block)
        b.update(block)
        size += len(block)
    return FileHash(a.hexdigest(), b.hexdigest(), size)


def _index_digests(bom: dict[str, Any]) -> set[str]:
    return {str(i.get("digest", "")).partition(":")[2] for i in bom.get("images") or []
            if i.get("mediaType") in INDEX_TYPES}


def _created(recorded: float) -> int:
    """SOURCE_DATE_EPOCH when set, else bundle.json's mtime: the tarball's entries carry the build's
    SOURCE_DATE_EPOCH (and `tar -x` restores it), so an intact bundle regenerates its own documents' bytes."""
    env = os.environ.get("SOURCE_DATE_EPOCH")
    return int(env) if env and env.isdigit() else int(recorded)


def tree_inventory(top: Path, created: int | None = None) -> Inventory:
    """The inventory of an unpacked bundle whose top directory is `top`, dated `created` (default: _created)."""
    bom = read_bundle_json(top)
    installer: dict[str, FileHash] = {}
    for path in [top / "install.py", *sorted((top / "installer").rglob("*"))]:
        rel = path.relative_to(top).as_posix()
        if path.is_file() and not path.is_symlink() and _is_installer(rel):
            with open(path, "rb") as f:
                installer[rel] = _hash(f.read)

    def blob(digest: str) -> bytes | None:
        p = top / BLOBS / digest.partition(":")[2]
        return p.read_bytes() if p.is_file() and p.stat().st_size <= MAX_INDEX else None

    when = created if created is not None else _created((top / BOM).stat().st_mtime)
    return _collect(top / BOM, bom, blob, installer, when)


def _tar_inventory(path: Path, progress: Callable[[int], None] | None) -> Inventory:
    bom: dict[str, Any] | None = None
    created = 0.0
    wanted: set[str] | None = None
    blobs: dict[str, bytes] = {}
    installer: dict[str, FileHash] = {}
    try:
        tar, raw = open_tar_stream(path, progress)
        with raw:
            for m in tar:
                parts = strip_dot(m.name).split("/", 1)
                if not m.isreg() or len(parts) != 2:
                    continue
                rel = parts[1]
                if rel == BOM and bom is None:
                    bom, created = read_bundle_json_bytes(tar, m), m.mtime
                    try:
                        wanted = _index_digests(bom)
                    except (TypeError, AttributeError):
                        wanted = set()  # images of another shape: _collect names the damage
                elif rel.startswith(BLOBS) and m.size <= MAX_INDEX:
                    hexd = rel[len(BLOBS):]
                    if wanted is None or hexd in wanted:
                        f = tar.extractfile(m)
                        assert f is not None  # a regular member always has content
                        data = f.read()
                        # before bundle.json (a repacked tarball): keep the JSON blobs only, not small layers
                        if wanted is not None or data.startswith(b"{"):
                            blobs[hexd] = data
                elif _is_installer(rel):
                    f = tar.extractfile(m)
                    assert f is not None
                    installer[rel] = _hash(f.read)
    except STREAM_ERRORS as e:
        raise SbomError(f"cannot read {path} ({e}): the tarball is truncated or corrupt; copy it again.") from e
    if bom is None:
        raise SbomError(f"{path} has no <top>/{BOM}: it is not a bundle written by `bundler build`.")
    return _collect(path, bom, lambda d: blobs.get(d.partition(":")[2]), installer, _created(created))


def _collect(where: Path, bom: dict[str, Any], blob: Callable[[str], bytes | None],
             installer: dict[str, FileHash], created: int) -> Inventory:
    """collect(), with a bundle.json section of an unexpected shape (a number where a list is due, an image
    without its ref) reported as a damaged bundle instead of a traceback."""
    try:
        return collect(bom, blob, installer, created)
    except (TypeError, AttributeError, KeyError, ValueError) as e:
        raise SbomError(f"{where}: bundle.json has a section of an unexpected shape ({type(e).__name__}: {e}). "
                        "The bundle is damaged or was not written by `bundler build`; run `bundler verify` on "
                        "it.") from None


def read_bundle_json_bytes(tar: Any, member: Any) -> dict[str, Any]:
    f = tar.extractfile(member)
    assert f is not None
    try:
        bom = json.loads(f.read().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise SbomError(f"{member.name} is not valid JSON ({e}). The bundle is damaged: run `bundler verify` on "
                        "it and copy it again.") from None
    if not isinstance(bom, dict):
        raise SbomError(f"{member.name} is not a JSON object: the bundle is damaged or not written by bundler.")
    return bom


def bundle_inventory(path: str | os.PathLike[str], progress: Callable[[int], None] | None = None) -> Inventory:
    """The inventory of a bundle tarball or unpacked directory (or the directory it was unpacked into);
    progress(compressed bytes read) while a tarball is read."""
    path = Path(path)
    if path.is_dir():
        return tree_inventory(find_top_dir(path))
    if not path.is_file():
        raise NoBundle(f"{path} does not exist. Give the bundle tarball or its unpacked directory.")
    if not is_tar_file(path):
        raise SbomError(f"{path} is neither a directory nor a tar archive (.tar, .tar.gz or .tar.xz): give the "
                        "bundle tarball written by `bundler build` or its unpacked directory.")
    return _tar_inventory(path, progress)
