"""Cut a bundle tarball into parts for size-limited media (FAT32 USB disks, transfer systems) and join them back.

The far side often has no bundler, only coreutils (CentOS 7), so besides the JSON index we write two
`sha256sum -c` files and print ONE shell command that checks every part, joins them, and checks the result:

    sha256sum -c NAME.parts.sha256 && cat NAME.part[0-9]* > NAME && sha256sum -c NAME.sha256

Part names are zero-padded so the shell glob sorts them in order; the glob cannot match NAME.parts.*.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
from pathlib import Path
from typing import Any

from ..errors import BundlerError
from .sums import CHUNK, atomic_write_bytes, format_sums

MIN_PART = 1 << 20
FAT32_MAX = (4 << 30) - 1

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40,
          "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40,
          "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


class SplitError(BundlerError):
    """Bad part size, not enough disk space, or a part that does not match the index."""


def parse_size(text: str | int) -> int:
    """'4G', '700M', '1.5G', '4095MiB', '4GB' (decimal), or plain bytes. K/M/G/T are binary (1024-based),
    like `split -b` and `dd`; KB/MB/GB/TB are decimal, as disk vendors and some transfer systems count."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    unit = m.group(2).upper() if m else ""
    if not m or unit not in _UNITS:
        raise SplitError(f"part size {text!r} is not understood. Use bytes or a number with K, M, G or T "
                         "(binary, e.g. 4095M for FAT32) or KB, MB, GB (decimal), e.g. --size 4095M.")
    return int(float(m.group(1)) * _UNITS[unit])


def part_names(name: str, count: int) -> list[str]:
    width = max(3, len(str(count)))
    return [f"{name}.part{i:0{width}d}" for i in range(1, count + 1)]


def join_command(name: str) -> str:
    """The one POSIX command (coreutils only) that checks the parts, joins them and checks the tarball."""
    q = shlex.quote
    return (f"sha256sum -c {q(name + '.parts.sha256')} && cat {q(name)}.part[0-9]* > {q(name)} && "
            f"sha256sum -c {q(name + '.sha256')}")


def split(tarball: str | os.PathLike[str], size: str | int) -> Path:
    """Cut `tarball` into `<tarball>.part001...` of at most `size` bytes; returns the index `<tarball>.parts.json`.

    One streaming pass hashes the parts and the whole tarball. Parts are written under hidden temporary names
    and renamed only when all are complete; stale parts of an earlier split are removed, since the join glob
    would otherwise pick them up.
    """
    tarball = Path(tarball)
    limit = parse_size(size)
    if limit < MIN_PART:
        raise SplitError(f"part size {size} ({limit} bytes) is below the minimum of 1 MiB: thousands of parts "
                         "help no medium. Use e.g. --size 700M, --size 4095M (FAT32) or --size 4G.")
    if not tarball.is_file():
        raise SplitError(f"{tarball} does not exist or is not a file. Give the bundle tarball to split.")
    total = tarball.stat().st_size
    count = max(1, -(-total // limit))
    free = shutil.disk_usage(tarball.parent).free
    if free < total + (16 << 20):
        raise SplitError(f"not enough free space in {tarball.parent} to split {tarball.name}: the parts need "
                         f"{total} bytes, {free} are free. Free some space or copy the tarball to a larger disk "
                         "first.")
    names = part_names(tarball.name, count)
    d = tarball.parent
    tmps = [d / f".{n}.tmp" for n in names]
    whole = hashlib.sha256()
    parts: list[dict[str, Any]] = []
    try:
        with open(tarball, "rb") as src:
            for name, tmp in zip(names, tmps):
                h, written = hashlib.sha256(), 0
                with open(tmp, "wb") as out:
                    while written < limit:
                        block = src.read(min(CHUNK, limit - written))
                        if not block:
                            break
                        h.update(block)
                        whole.update(block)
                        out.write(block)
                        written += len(block)
                    out.flush()
                    os.fsync(out.fileno())
                parts.append({"name": name, "size": written, "sha256": h.hexdigest()})
            if src.read(1):
                raise SplitError(f"{tarball} grew while it was being split. Wait until it is completely written, "
                                 "then split again.")
        digest = whole.hexdigest()
        for stale in d.glob(f"{glob_escape(tarball.name)}.part[0-9]*"):
            if stale.name not in names:
                stale.unlink()
        for name, tmp in zip(names, tmps):
            os.replace(tmp, d / name)
    except BaseException:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
        raise
    part_sums = format_sums({p["name"]: p["sha256"] for p in parts})
    atomic_write_bytes(d / f"{tarball.name}.parts.sha256", part_sums.encode())
    atomic_write_bytes(d / f"{tarball.name}.sha256", format_sums({tarball.name: digest}).encode())
    index = {
        "schemaVersion": 1,
        "tarball": {"name": tarball.name, "size": total, "sha256": digest},
        "partSize": limit,
        "parts": parts,
        "join": join_command(tarball.name),
    }
    return atomic_write_bytes(d / f"{tarball.name}.parts.json", (json.dumps(index, indent=2) + "\n").encode())


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def read_index(index: str | os.PathLike[str]) -> dict[str, Any]:
    index = Path(index)
    try:
        data = json.loads(index.read_text())
        names = [data["tarball"]["name"]] + [p["name"] for p in data["parts"]]
        ok = bool(data["parts"]) and all(isinstance(n, str) and n == Path(n).name and n for n in names)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SplitError(f"{index} is not a parts index written by `bundler split` ({e}). Give the "
                         "<tarball>.parts.json file that was copied with the parts.") from e
    if not ok:
        raise SplitError(f"{index} names files outside its own directory or no parts at all; it was not written "
                         "by `bundler split`. Give the <tarball>.parts.json file that was copied with the parts.")
    return data


def join(index: str | os.PathLike[str], dest: str | os.PathLike[str] | None = None) -> Path:
    """Check every part against the index, concatenate them, check the whole; returns the joined tarball.

    Every bad or missing part is named (so the operator re-copies only those); nothing is left behind on failure.
    """
    index = Path(index)
    data = read_index(index)
    d = index.parent
    dest = Path(dest) if dest is not None else d / data["tarball"]["name"]
    tmp = dest.with_name(f".{dest.name}.join.tmp")
    bad: list[str] = []
    whole = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part in data["parts"]:
                p = d / part["name"]
                if not p.is_file():
                    bad.append(f"{part['name']} is missing")
                    continue
                h, n = hashlib.sha256(), 0
                with open(p, "rb") as f:
                    while block := f.read(CHUNK):
                        h.update(block)
                        whole.update(block)
                        out.write(block)
                        n += len(block)
                if n != part["size"] or h.hexdigest() != part["sha256"]:
                    bad.append(f"{part['name']} is damaged ({n} bytes, sha256 {h.hexdigest()[:16]}...; expected "
                               f"{part['size']} bytes, {part['sha256'][:16]}...)")
            out.flush()
            os.fsync(out.fileno())
        if bad:
            raise SplitError("cannot join: " + "; ".join(bad) + ". Copy those parts again from the original "
                             "medium, then join again.")
        if whole.hexdigest() != data["tarball"]["sha256"]:
            raise SplitError(f"the joined {dest.name} does not match the sha256 in {index.name} although every "
                             "part does: the index belongs to another split. Copy the parts and index together.")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest
