"""Build small but correctly formed bundles with Python's tarfile, the way bundler build lays them out."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bundler.bundle.sums import format_sums

TOP = "k8s-1.30-el9-1.0.0-el9-x86_64"
PACKAGES = [("kubeadm", 0, "1.30.4", "150500.1.1", "x86_64"), ("containerd.io", 0, "1.7.20", "3.1.el9", "x86_64"),
            ("conntrack-tools", 0, "1.4.7", "2.el9", "x86_64")]
IMAGES = [("registry.k8s.io/pause:3.9", b"pause-3.9"), ("registry.k8s.io/etcd:3.5.15-0", b"etcd-3.5.15")]
MTIME = 1_700_000_000  # of every tar entry


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content(packages: Iterable[tuple[str, int, str, str, str]] = PACKAGES,
            images: Iterable[tuple[str, bytes]] = IMAGES, version: str = "1.0.0",
            kubernetes: str = "1.30.4", sbom: bool = False) -> dict[str, bytes]:
    """Files of a bundle (relative paths -> bytes) including a bundle.json that describes them (and with sbom,
    the SBOM documents generated from it, as `bundler build` writes them)."""
    files: dict[str, bytes] = {
        "install.py": b"#!/bin/sh\necho install\n",
        "installer/__init__.py": b"",
        "INSTALL.md": b"# Install\n",
        "manifests/calico.yaml": b"kind: List\n",
        "files/registry": b"\x7fELF registry binary",
    }
    pkgs = []
    for name, epoch, ver, rel, arch in packages:
        path = f"repo/Packages/{name}-{ver}-{rel}.{arch}.rpm"
        files[path] = f"rpm payload of {name}-{epoch}:{ver}-{rel}.{arch}".encode()
        pkgs.append({"name": name, "epoch": epoch, "version": ver, "release": rel, "arch": arch, "repo": "kubernetes",
                     "path": path, "size": len(files[path]), "sha256": sha(files[path])})
    files["repo/repodata/repomd.xml"] = b"<repomd/>"
    imgs, manifests = [], []
    for ref, payload in images:
        blob = b'{"manifest for": "' + payload + b'"}'
        digest = "sha256:" + sha(blob)
        files[f"images/blobs/sha256/{sha(blob)}"] = blob
        manifests.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
                          "size": len(blob), "annotations": {"io.airgap-bundler.image.ref": ref}})
        imgs.append({"ref": ref, "digest": digest, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                     "size": len(blob) * 1000, "platforms": ["linux/amd64"]})
    files["images/oci-layout"] = b'{"imageLayoutVersion": "1.0.0"}'
    files["images/index.json"] = json.dumps({"schemaVersion": 2, "manifests": manifests}).encode()
    bom: dict[str, Any] = {
        "schemaVersion": 1, "builder": {"name": "airgap-bundler", "version": "0.1.0"},
        "name": "k8s-1.30-el9", "version": version, "target": {"os": "el9", "arch": "x86_64"},
        "kubernetes": {"version": kubernetes}, "runtime": "containerd", "cni": "calico", "install": "packages",
        "packages": pkgs, "images": imgs,
        "files": [{"name": "registry", "kind": "binary", "path": "files/registry",
                   "size": len(files["files/registry"]), "sha256": sha(files["files/registry"])}],
    }
    files["bundle.json"] = json.dumps(bom, indent=2).encode()
    if sbom:
        files.update(sbom_documents(files, bom))
    return files


def sbom_documents(files: dict[str, bytes], bom: dict[str, Any]) -> dict[str, bytes]:
    """The SBOM documents `bundler build` would write for these files (dated like the tar entries below)."""
    from bundler.sbom import PATHS, render
    from bundler.sbom.model import FileHash, collect

    installer = {p: FileHash(hashlib.sha1(d).hexdigest(), sha(d), len(d)) for p, d in files.items()
                 if p == "install.py" or p.startswith("installer/")}
    inv = collect(bom, lambda d: files.get(f"images/blobs/sha256/{d.partition(':')[2]}"), installer, MTIME)
    return {rel: render(inv, fmt) for fmt, rel in PATHS.items()}


def _info(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size, ti.type, ti.linkname, ti.mtime = size, kind, link, MTIME
    ti.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return ti


def add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))


def add_link(tar: tarfile.TarFile, name: str, target: str, hard: bool = False) -> None:
    tar.addfile(_info(name, 0, tarfile.LNKTYPE if hard else tarfile.SYMTYPE, target))


def add_special(tar: tarfile.TarFile, name: str, kind: bytes) -> None:
    tar.addfile(_info(name, 0, kind))


def write_bundle(dest_dir: Path, files: dict[str, bytes] | None = None, *, top: str = TOP, fmt: str = "gz",
                 sig: Callable[[bytes], bytes] | None = None, unlisted: Iterable[str] = (),
                 extra: Callable[[tarfile.TarFile], None] | None = None, bundle_json_last: bool = False,
                 also_listed: dict[str, bytes] | None = None) -> Path:
    """Write `<top>.tar[.gz|.xz]`: top dir, bundle.json first, the rest sorted, SHA256SUMS (+ .asc) last.

    `unlisted` names files written but left out of SHA256SUMS; `extra` adds raw members (hostile entries, links)
    and `also_listed` lists in SHA256SUMS what `extra` adds (path -> content it resolves to).
    """
    files = content() if files is None else files
    listed = {p: sha(d) for p, d in files.items() if p not in unlisted}
    listed.update({p: sha(d) for p, d in (also_listed or {}).items()})
    sums_text = format_sums(listed).encode()
    order = sorted(files)
    order.remove("bundle.json")
    order = order + ["bundle.json"] if bundle_json_last else ["bundle.json"] + order
    path = dest_dir / (f"{top}.tar" + ("" if fmt == "" else f".{fmt}"))
    with tarfile.open(path, "w:" + fmt, format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_info(top, kind=tarfile.DIRTYPE))
        for p in order:
            add_file(tar, f"{top}/{p}", files[p])
        if extra:
            extra(tar)
        add_file(tar, f"{top}/SHA256SUMS", sums_text)
        if sig:
            add_file(tar, f"{top}/SHA256SUMS.asc", sig(sums_text))
    return path
