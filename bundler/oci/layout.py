"""Write one OCI image layout with every blob stored once, whatever number of images share it.

index.json lists one descriptor per image reference, sorted by it so the same inputs always give the same
bytes. Both `org.opencontainers.image.ref.name` and `io.airgap-bundler.image.ref` hold the full reference
(registry.k8s.io/pause:3.9): standard tools find images by name (`skopeo inspect oci:images:registry.k8s.io/pause:3.9`,
containerd's `ctr images import`), and images of different repositories that share a tag (calico's three
v3.28.1) stay distinct.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from ..errors import BundlerError

REF_NAME = "org.opencontainers.image.ref.name"
FULL_REF = "io.airgap-bundler.image.ref"
OCI_LAYOUT = {"imageLayoutVersion": "1.0.0"}
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def _split(digest: str) -> tuple[str, str]:
    algo, _, hexd = digest.partition(":")
    if algo != "sha256" or len(hexd) != 64 or any(c not in "0123456789abcdef" for c in hexd):
        raise ValueError(f"unsupported digest {digest!r}")
    return algo, hexd


class OCILayout:
    """An OCI image layout directory; add blobs and references, then write_index()."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self._entries: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        index = self.root / "index.json"
        if index.is_file():
            for d in json.loads(index.read_text()).get("manifests", []):
                key = (d.get("annotations") or {}).get(FULL_REF) or d["digest"]
                self._entries[key] = d
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.root / "oci-layout").write_text(json.dumps(OCI_LAYOUT))

    def blob_path(self, digest: str) -> Path:
        algo, hexd = _split(digest)
        return self.root / "blobs" / algo / hexd

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def add_blob_file(self, digest: str, src: Path) -> Path:
        """Hard-link src (a verified cache file) into the layout, or copy it across filesystems; once per digest."""
        dest = self.blob_path(digest)
        if dest.is_file():
            return dest
        tmp = dest.with_name(f".{dest.name}.{threading.get_ident()}.tmp")
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
        return dest

    def add_blob_bytes(self, digest: str, data: bytes) -> Path:
        """Store manifests and configs exactly as fetched (their bytes are their identity)."""
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise BundlerError(f"internal error: bytes given for {digest} do not match it")
        dest = self.blob_path(digest)
        if not dest.is_file():
            tmp = dest.with_name(f".{dest.name}.{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, dest)
        return dest

    def add_reference(
        self, full_ref: str, media_type: str, digest: str, size: int, platform: dict | None = None
    ) -> dict[str, Any]:
        """Point full_ref at a stored manifest or index (replacing an older entry for the same reference)."""
        desc: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size}
        if platform:
            desc["platform"] = platform
        desc["annotations"] = {FULL_REF: full_ref, REF_NAME: full_ref}
        with self._lock:
            self._entries[full_ref] = desc
        return desc

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._entries[k] for k in sorted(self._entries)]

    def write_index(self) -> Path:
        """Write index.json atomically, entries sorted by full reference (deterministic output)."""
        body = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.entries()}
        path = self.root / "index.json"
        tmp = path.with_name(".index.json.tmp")
        tmp.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
        return path
