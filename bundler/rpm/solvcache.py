"""libsolv's own binary repo format (.solv) as a cache of parsed repo metadata.

Parsing ~100 MB of primary XML costs seconds on every `plan`; loading the same repo from a .solv file costs a
fraction of that. The file sits beside the decompressed XML in the download cache and is named after it, i.e.
after the checksum repomd.xml publishes for that metadata, so a changed repo never meets a stale .solv. Written
atomically (temporary name, then rename); a read-only cache just skips the write, and an unreadable or foreign
.solv (another libsolv) falls back to the XML.
"""

from __future__ import annotations

import json
from pathlib import Path

import solv

from ..fetch.cachefile import write_best_effort, write_bytes

SUFFIX = ".solv"


def solv_path(*sources: Path) -> Path:
    """The .solv for a repo built from these metadata files (primary, then any extension such as filelists)."""
    return sources[0].with_name("+".join(p.stem for p in sources) + SUFFIX)


def load(repo: solv.Repo, path: Path) -> bool:
    """Fill an empty repo from `path`; False (repo left empty) when there is no usable .solv."""
    f = solv.xfopen(str(path)) if path.is_file() else None
    if not f:
        return False
    try:
        ok = repo.add_solv(f, 0)
    finally:
        f.close()
    if not ok:
        repo.empty()
    return bool(ok)


def save(repo: solv.Repo, path: Path) -> None:
    """Write the repo as `path` (best effort, atomic)."""

    def write(tmp: Path) -> bool:
        f = solv.xfopen(str(tmp), "w")
        if not f:
            return False
        try:
            return bool(repo.write(f))
        finally:
            f.close()

    write_best_effort(path, write)


ARCHES = ".arches"  # beside the .solv, see load_arches


def load_arches(path: Path, nsolvables: int) -> dict | None:
    """The arch index saved beside the .solv `path`: {"n": solvables, "main": the most common arch, "other": {arch:
    offsets in the repo}}. It lets a plan restrict the pool to the target's arches without a Python pass over every
    solvable. None when absent or not for a repo of this size."""
    try:
        data = json.loads(path.with_name(path.name + ARCHES).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("n") != nsolvables or not isinstance(data.get("other"), dict):
        return None
    return data


def save_arches(index: dict, path: Path) -> None:
    """Write the arch index beside the .solv `path` (best effort, atomic)."""

    write_bytes(path.with_name(path.name + ARCHES), json.dumps(index, separators=(",", ":")).encode())
