"""What is in a bundle, from its bill of materials alone (bundle.json), without unpacking or hashing anything.

The writer puts bundle.json at the front of the tar (after the directory entries), so reading stops after a few
kilobytes even for a 40 GiB bundle; a repacked tarball with bundle.json elsewhere is still found by reading on.
This is for review, not trust: `bundler verify` is what checks the bundle.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import BundlerError
from .dirscan import find_top_dir
from .tarstream import MAX_CONTROL_FILE, STREAM_ERRORS, is_tar_file, open_tar_stream, strip_dot

BOM = "bundle.json"


class InspectError(BundlerError):
    """bundle.json is missing or unreadable."""


def _parse(data: bytes, where: str) -> dict[str, Any]:
    try:
        bom = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise InspectError(f"{where} is not valid JSON ({e}). The bundle is damaged: run `bundler verify` on it "
                           "and copy it again.") from None
    if not isinstance(bom, dict):
        raise InspectError(f"{where} is not a JSON object. The bundle is damaged or was not written by bundler.")
    version = bom.get("schemaVersion", 1)
    if not isinstance(version, int):
        raise InspectError(f"{where} has schemaVersion {version!r}, not a number. The bundle is damaged or was not "
                           "written by bundler.")
    if version > 1:
        raise InspectError(f"{where} has schemaVersion {bom['schemaVersion']}, newer than this bundler "
                           "understands (1). Use a newer bundler to inspect it.")
    return bom


def read_bundle_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed bundle.json of a bundle tarball or unpacked directory."""
    path = Path(path)
    if path.is_dir():
        f = find_top_dir(path) / BOM
        if not f.is_file():
            raise InspectError(f"{path} has no {BOM} (looked in {f.parent}). Give a bundle written by "
                               "`bundler build`, or its unpacked directory.")
        return _parse(f.read_bytes(), str(f))
    if not path.is_file():
        raise InspectError(f"{path} does not exist. Give the bundle tarball or its unpacked directory.")
    if not is_tar_file(path):
        raise InspectError(f"{path} is neither a directory nor a tar archive (.tar, .tar.gz or .tar.xz).")
    try:
        tar, raw = open_tar_stream(path)
        with raw:
            for m in tar:
                parts = strip_dot(m.name).split("/")
                if m.isreg() and len(parts) == 2 and parts[1] == BOM and m.size <= MAX_CONTROL_FILE:
                    member = tar.extractfile(m)
                    assert member is not None  # a regular member always has content
                    return _parse(member.read(), f"{path.name}:{'/'.join(parts)}")
    except STREAM_ERRORS as e:
        raise InspectError(f"cannot read {path} ({e}): the tarball is truncated or corrupt; copy it again.") from e
    raise InspectError(f"{path} has no <top>/{BOM}: it is not a bundle written by `bundler build`.")


def _size(items: list[dict[str, Any]]) -> int:
    return sum(int(i.get("size") or 0) for i in items)


def summarize(bom: dict[str, Any], bundle: str = "") -> dict[str, Any]:
    """The review summary of an already-parsed bundle.json (shared by inspect and diff)."""
    packages = list(bom.get("packages") or [])
    images = list(bom.get("images") or [])
    files = list(bom.get("files") or [])
    target = bom.get("target") or {}
    return {
        "bundle": bundle,
        "name": bom.get("name"),
        "version": bom.get("version"),
        "target": {"os": target.get("os"), "arch": target.get("arch")},
        "kubernetes": (bom.get("kubernetes") or {}).get("version"),
        "runtime": bom.get("runtime"),
        "cni": bom.get("cni"),
        "install": bom.get("install"),
        "builder": bom.get("builder"),
        "packages": {
            "count": len(packages), "size": _size(packages),
            "list": sorted(({k: p.get(k) for k in ("name", "epoch", "version", "release", "arch", "size", "sha256")}
                            for p in packages), key=lambda p: (str(p["name"]), str(p["arch"]))),
        },
        "images": {
            "count": len(images), "size": _size(images),
            "list": [{"ref": i.get("ref"), "digest": i.get("digest"), "size": i.get("size"),
                      "platforms": i.get("platforms") or []} for i in images],
        },
        "files": {
            "count": len(files), "size": _size(files),
            "list": [{"name": f.get("name"), "kind": f.get("kind"), "path": f.get("path"), "size": f.get("size")}
                     for f in files],
        },
        "size": _size(packages) + _size(images) + _size(files),
    }


def inspect(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Summary of a bundle (tarball or directory) from its bundle.json: identity, target, versions, contents."""
    return summarize(read_bundle_json(path), str(path))


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def _evr(p: dict[str, Any]) -> str:
    epoch = f"{p['epoch']}:" if str(p.get("epoch") or "0") != "0" else ""
    return f"{epoch}{p.get('version')}-{p.get('release')}"


def format_inspect(s: dict[str, Any]) -> str:
    """Human text: one identity block, then the images, packages and files, each an aligned table."""
    from ..table import columns

    t = s["target"]
    lines = [
        f"bundle      {s['name']} {s['version']}  ({s['bundle']})",
        f"target      {t['os']}/{t['arch']}",
        f"kubernetes  {s['kubernetes'] or '-'}   runtime {s['runtime'] or '-'}   cni {s['cni'] or '-'}"
        + (f"   install {s['install']}" if s.get("install") else ""),
        f"packages    {s['packages']['count']:>5}  {human_size(s['packages']['size'])}",
        f"images      {s['images']['count']:>5}  {human_size(s['images']['size'])}",
        f"files       {s['files']['count']:>5}  {human_size(s['files']['size'])}",
        f"total              {human_size(s['size'])}",
    ]
    if s["images"]["list"]:
        lines.append("images:")
        lines += columns([(i["ref"] or "", i["digest"] or "") for i in s["images"]["list"]])
    packages = s["packages"].get("list") or []
    if packages:
        lines.append("packages:")
        lines += columns([(str(p["name"]), _evr(p), str(p["arch"]), human_size(int(p["size"] or 0)),
                           str(p["sha256"] or "-")) for p in packages], right=(3,))
    if s["files"]["list"]:
        lines.append("files:")
        lines += [f"  {f['path']}  ({f['kind'] or 'file'}, {human_size(int(f['size'] or 0))})"
                  for f in s["files"]["list"]]
    return "\n".join(lines)
