"""One pass over a bundle tarball, hashing each member while reading and never extracting: what is in it, what
each file hashes to, and which members are hostile (absolute, '..', escaping links, devices, duplicates)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO, cast

from .report import Report
from .rules import bundle_rules
from .sums import SIG, SUMS, sha256_stream
from .tarstream import MAX_CONTROL_FILE, STREAM_ERRORS, open_tar_stream, strip_dot


def _resolve(parts: list[str], symlinks: dict[str, str], depth: int = 0) -> list[str] | None:
    """Resolve a path inside the archive as the filesystem would after extraction, following symlinks that are
    members; None if it climbs above the archive root, is absolute, or loops. Lexical normalisation is not enough:
    `top/a -> b/c` makes `top/a/../..` land somewhere else than it looks."""
    out: list[str] = []
    for c in parts:
        if c in ("", "."):
            continue
        if c == "..":
            if not out:
                return None
            out.pop()
            continue
        out.append(c)
        target = symlinks.get("/".join(out))
        if target is not None:
            if depth > 40 or target.startswith("/"):
                return None
            res = _resolve(out[:-1] + target.split("/"), symlinks, depth + 1)
            if res is None:
                return None
            out = res
    return out


@dataclass
class _Scan:
    """What a pass over the bundle found, in the same shape for tarballs and directories."""

    present: set[str] = field(default_factory=set)  # every non-directory path under top
    hashes: dict[str, str] = field(default_factory=dict)  # content hash of files (and in-tree links to files)
    reported: set[str] = field(default_factory=set)  # paths already named with a problem
    sums: bytes | None = None
    sig: bytes | None = None
    bundle_json: bytes | None = None  # kept for R9 (a delta bundle's omissions) and for `--delta-from` a tarball
    unreadable: bool = False  # nothing could be read: per-file checks would only add noise


def _read_small(f: IO[bytes] | None, size: int) -> bytes | None:
    if f is None or size > MAX_CONTROL_FILE:
        return None
    return f.read()


def scan_tar(path: Path, report: Report, progress: Callable[[int], None] | None) -> _Scan:
    scan = _Scan()
    tops: dict[str, bool] = {}  # first component -> is it a directory (has children or is a dir entry)
    seen: dict[str, tarfile.TarInfo] = {}
    symlinks: dict[str, str] = {}  # archive path -> link target, for resolution at the end
    member_hash: dict[str, str] = {}  # archive path -> sha256 for every regular member (targets of links)
    members = []  # (archive path, kind, info) in order, to sort into top / outside once the top is known
    duplicates: list[str] = []
    control: dict[str, bytes] = {}  # top-level SHA256SUMS / .asc candidates, picked once the top is known
    count = 0
    raw = None
    try:
        tar, raw = open_tar_stream(path, progress)
        with raw:
            for m in tar:
                count += 1
                name = strip_dot(m.name)
                if name.startswith("/"):
                    report.add(m.name, "absolute path in the tar: extracting it would write outside the bundle")
                    continue
                parts = name.split("/")
                if ".." in parts:
                    report.add(m.name, "'..' in the path: extracting it would write outside the bundle")
                    continue
                if not name:
                    continue  # the './' entry itself
                if name in seen and not (m.isdir() and seen[name].isdir()):
                    duplicates.append(name)
                seen[name] = m
                is_dir_top = len(parts) > 1 or m.isdir()
                tops[parts[0]] = tops.get(parts[0], False) or is_dir_top
                if m.isdir():
                    continue
                if m.ischr() or m.isblk():
                    members.append((name, "bad", "device file: a bundle never contains one"))
                elif m.isfifo():
                    members.append((name, "bad", "named pipe (FIFO): a bundle never contains one"))
                elif m.issym():
                    symlinks[name] = m.linkname
                    members.append((name, "sym", m.linkname))
                elif m.islnk():
                    members.append((name, "hard", m.linkname))
                elif m.isreg():
                    f = tar.extractfile(m)
                    if parts[-1] in (SUMS, SIG, "bundle.json") and len(parts) <= 2:
                        data = _read_small(f, m.size) or b""
                        control[name] = data
                        digest = sha256_stream(io.BytesIO(data))
                    else:
                        assert f is not None  # extractfile returns None only for non-regular members
                        digest = sha256_stream(cast(BinaryIO, f))  # IO[bytes]; sha256_stream uses only .read()
                    report.bytes_hashed += m.size
                    member_hash[name] = digest
                    members.append((name, "reg", digest))
                else:
                    members.append((name, "bad", f"unsupported tar member type {m.type!r}"))
    except STREAM_ERRORS as e:
        if raw is not None:
            raw.close()
        if count == 0:
            report.add(path.name, f"not a readable tar archive, or damaged at its very start ({e}): copy it again "
                                  "from the original, or give the unpacked directory")
            scan.unreadable = True
            return scan
        report.add(path.name, f"the tarball ends or is corrupt after {count} members ({e}): the copy is "
                              "incomplete or damaged; copy it again (see `bundler split` for size-limited media)")

    # The top directory: the one holding SHA256SUMS, else the first one seen.
    top = next((t for t in tops if f"{t}/{SUMS}" in seen), None) or next(iter(tops), None)
    if top is None:
        report.add(path.name, "the tarball is empty")
        return scan
    if not tops[top]:
        report.add(top, "a bundle unpacks into one top-level directory, but this is a file at the top level")
        return scan
    report.top = top
    scan.sums, scan.sig = control.get(f"{top}/{SUMS}"), control.get(f"{top}/{SIG}")
    scan.bundle_json = control.get(f"{top}/bundle.json")
    for other in tops:
        if other != top:
            report.add(other, f"a second top-level entry beside {top}/: a bundle unpacks into exactly one directory")
    prefix = top + "/"
    for name in dict.fromkeys(duplicates):
        if name.startswith(prefix):
            rel = name[len(prefix):]
            report.add(rel, "appears more than once in the tar: extracting keeps only the last copy, which may not "
                            "be what SHA256SUMS describes")
            scan.reported.add(rel)
    for name, kind, info in members:
        if not name.startswith(prefix):
            continue  # reported with its top-level entry above
        rel = name[len(prefix):]
        scan.present.add(rel)
        if kind == "bad":
            report.add(rel, info)
            scan.reported.add(rel)
        elif kind == "reg":
            scan.hashes[rel] = info
        elif kind == "sym":
            res = None if info.startswith("/") else _resolve(name.split("/")[:-1] + info.split("/"), symlinks)
            if res is None or res[0] != top:
                report.add(rel, f"symbolic link to {info!r} leaves the bundle directory")
                scan.reported.add(rel)
            elif "/".join(res) in member_hash:
                scan.hashes[rel] = member_hash["/".join(res)]
            else:
                report.add(rel, f"symbolic link to {info!r}, which is not a file in the bundle")
                scan.reported.add(rel)
        elif kind == "hard":
            target = strip_dot(info)
            if target.startswith("/") or ".." in target.split("/") or not target.startswith(prefix):
                report.add(rel, f"hard link to {info!r} outside the bundle directory")
                scan.reported.add(rel)
            elif target in member_hash:
                scan.hashes[rel] = member_hash[target]
            else:
                report.add(rel, f"hard link to {info!r}, which is not an earlier file in the tar")
                scan.reported.add(rel)
    return scan


def check_against_sums(scan: _Scan, report: Report) -> None:
    """A tarball's members against its SHA256SUMS: the same rules (and texts) as an unpacked tree."""
    rules = bundle_rules()
    shared = rules.Scan()
    shared.present, shared.digests, shared.reported, shared.sums = scan.present, scan.hashes, scan.reported, scan.sums
    shared.bundle_json = scan.bundle_json
    problems, checked, _ = rules.check(shared)
    report.omitted += shared.omitted
    for path, problem in problems:
        report.add(path, problem)
    report.files_checked += checked
