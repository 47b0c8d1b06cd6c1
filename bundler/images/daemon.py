"""`docker-daemon:NAME:TAG`: an operator's own images that exist only in the local Docker daemon.

Exported through the Docker SDK (optional extra `pip install .[docker]`) as a `docker save` stream, spooled
to disk (never held in memory), and rewritten as an OCI manifest whose layers are the uncompressed layer
tars (their digests are the image's diff_ids, so nothing is recompressed or changed).
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import tempfile
from typing import Any

from ..errors import FetchError
from ..fetch.cache import Cache
from ..fetch.download import store_stream
from ..oci.layout import OCILayout
from ..registry.client import OCI_MANIFEST, platform_string
from ..registry.reference import parse_reference
from .record import DAEMON_PREFIX, ImageRecord

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
CHUNK = 1 << 20


def _client(text: str) -> Any:
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:
        raise FetchError(
            f"image {text}: docker-daemon: images need the Docker SDK. Install it with "
            "`pip install 'airgap-bundler[docker]'`, or push the image to a registry and list it by that reference."
        ) from None
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except DockerException as e:
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise FetchError(
            f"image {text}: no Docker daemon is reachable at {host} ({type(e).__name__}). Start Docker (or set "
            "DOCKER_HOST to its socket), or push the image to a registry and list it by its registry reference."
        ) from None
    return client


def _get(client: Any, text: str) -> Any:
    name = text[len(DAEMON_PREFIX):]
    try:
        return client.images.get(name)
    except Exception as e:  # docker.errors.ImageNotFound and API errors alike
        raise FetchError(
            f"image {text}: not found in the local Docker daemon ({type(e).__name__}: {e}). Check `docker images`, "
            "or build/pull it first."
        ) from None


def describe_daemon_image(text: str, client: Any = None) -> ImageRecord:
    """For `bundler plan`: the image ID and size as the daemon reports them, without exporting."""
    img = _get(client or _client(text), text)
    attrs = img.attrs
    plat = {"os": attrs.get("Os", ""), "architecture": attrs.get("Architecture", ""),
            "variant": attrs.get("Variant", "")}
    ref = parse_reference(text[len(DAEMON_PREFIX):])
    return ImageRecord(str(ref), attrs["Id"], "docker-daemon", int(attrs.get("Size") or 0),
                       (platform_string(plat),))


def export_daemon_image(text: str, layout: OCILayout, cache: Cache, client: Any = None) -> ImageRecord:
    """Export docker-daemon:NAME:TAG into layout as an OCI image stored under NAME:TAG."""
    img = _get(client or _client(text), text)
    ref = parse_reference(text[len(DAEMON_PREFIX):])
    (cache.root / "partial").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=cache.root / "partial") as spool:
        for chunk in img.save(named=True):
            spool.write(chunk)
        spool.seek(0)
        with tarfile.open(fileobj=spool, mode="r:") as tar:
            index = tar.extractfile("manifest.json") if "manifest.json" in tar.getnames() else None
            entries = json.load(index) if index else None
            if not entries:
                raise FetchError(f"image {text}: the daemon's export has no image in it.")
            entry = entries[0]
            config_member = tar.extractfile(entry["Config"])
            if config_member is None:
                raise FetchError(f"image {text}: the daemon's export lacks its config {entry['Config']}.")
            config = config_member.read()
            layers: list[dict[str, Any]] = []
            for name in entry["Layers"]:
                member = tar.extractfile(name)
                if member is None:
                    raise FetchError(f"image {text}: the daemon's export lacks layer {name}.")
                path, hexdigest, size = store_stream(cache, member, "daemon")
                digest = f"sha256:{hexdigest}"
                layout.add_blob_file(digest, path)
                layers.append({"mediaType": OCI_LAYER_TAR, "digest": digest, "size": size})
    cfg_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    layout.add_blob_bytes(cfg_digest, config)
    manifest = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
         "config": {"mediaType": OCI_CONFIG, "digest": cfg_digest, "size": len(config)}, "layers": layers},
        separators=(",", ":"),
    ).encode()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    layout.add_blob_bytes(digest, manifest)
    layout.add_reference(str(ref), OCI_MANIFEST, digest, len(manifest))
    cfg = json.loads(config)
    plat = {"os": cfg.get("os", ""), "architecture": cfg.get("architecture", ""), "variant": cfg.get("variant", "")}
    total = len(manifest) + len(config) + sum(layer["size"] for layer in layers)
    return ImageRecord(str(ref), digest, OCI_MANIFEST, total, (platform_string(plat),))
