"""Resolve every image first, then fetch all their blobs at once: parallel across images, each blob once.

Resolution (manifests and configs, a few KiB per image) is all `bundler plan` needs; `pull_images` then hands
the union of layer blobs to fetch_all, so shared layers are downloaded and stored once and one progress
callback covers the whole set.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import FetchError
from ..fetch.cache import Cache
from ..fetch.download import Item, Stats, fetch_all
from ..oci.layout import OCILayout
from ..registry.client import Manifest, RegistryClient, normalize_platform, platform_string, select_manifests
from ..registry.reference import Reference, parse_reference
from .daemon import describe_daemon_image, export_daemon_image
from .record import DAEMON_PREFIX, ImageRecord


@dataclass(frozen=True)
class ImageOptions:
    """Where and how to fetch images: the same for planning, resolving and pulling.

    `client` is made from `mirrors` and `insecure` when not given; `platforms` as in `pull_images`.
    """

    platforms: Sequence[str] | None
    cache: Cache
    client: RegistryClient | None = None
    mirrors: dict[str, str] | None = None
    insecure: Iterable[str] = ()
    workers: int = 8

    def registry(self) -> RegistryClient:
        return self.client or RegistryClient(mirrors=self.mirrors, insecure=self.insecure)


@dataclass
class ResolvedImage:
    """What one reference becomes in the store: the top manifest (or index), every manifest, every blob."""

    ref: Reference
    top: Manifest
    manifests: list[Manifest]
    blobs: dict[str, int] = field(default_factory=dict)  # digest -> size (configs and layers)
    configs: list[str] = field(default_factory=list)
    platforms: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return sum(m.size for m in self.manifests) + sum(self.blobs.values())

    @property
    def name(self) -> str:
        """The reference as stored: a pinned `name:tag@digest` keeps its tag name (the digest is in the record)."""
        return str(self.ref.with_digest(None)) if self.ref.tag and self.ref.digest else str(self.ref)

    def record(self) -> ImageRecord:
        return ImageRecord(self.name, self.top.digest, self.top.media_type, self.size, self.platforms)


def _blobs_of(ref: Reference, m: Manifest, img: ResolvedImage) -> None:
    doc = m.json
    config = doc.get("config") or {}
    if not config.get("digest"):
        raise FetchError(f"image {ref}: manifest {m.digest} has no config; it is not an image manifest.")
    img.blobs[config["digest"]] = int(config.get("size") or 0)
    img.configs.append(config["digest"])
    for layer in doc.get("layers") or []:
        img.blobs[layer["digest"]] = int(layer.get("size") or 0)


def resolve_one(client: RegistryClient, text: str, platforms: Sequence[str] | None) -> ResolvedImage:
    """Manifests for one reference; one platform -> that child only, several or None -> the whole index."""
    ref = parse_reference(text)
    top = client.get_manifest(ref)
    if not top.is_index:
        img = ResolvedImage(ref, top, [top])
        _blobs_of(ref, top, img)
        return img
    if platforms is not None and len(platforms) == 1:
        desc = select_manifests(str(ref), top, platforms)[0]
        child = client.get_manifest(ref, desc["digest"])
        if child.is_index:
            raise FetchError(f"image {ref}: nested indexes are not supported ({child.digest}).")
        img = ResolvedImage(ref, child, [child], platforms=(platform_string(desc.get("platform") or {}),))
        _blobs_of(ref, child, img)
        return img
    if platforms:
        select_manifests(str(ref), top, platforms)  # every asked platform must exist
    # Keep the index byte for byte with *every* child it names (attestations too): a registry refuses an
    # index whose children are missing, and rewriting the index would change its digest.
    img = ResolvedImage(ref, top, [top])
    names = []
    for desc in top.json.get("manifests", []):
        child = client.get_manifest(ref, desc["digest"])
        if child.is_index:
            raise FetchError(f"image {ref}: nested indexes are not supported ({child.digest}).")
        img.manifests.append(child)
        _blobs_of(ref, child, img)
        if (desc.get("platform") or {}).get("os") not in (None, "unknown"):
            names.append(platform_string(desc["platform"]))
    img.platforms = tuple(names)
    return img


def _check_config_platforms(img: ResolvedImage, cache: Cache, platforms: Sequence[str] | None) -> None:
    """Plain manifests carry their platform in the config: record it, and refuse a wrong-arch image."""
    if img.top.is_index or img.platforms:
        return
    path = cache.get("sha256", img.configs[0].split(":", 1)[1])
    cfg = json.loads(path.read_bytes()) if path else {}
    if not cfg.get("architecture"):
        return
    plat = {"os": cfg.get("os", ""), "architecture": cfg["architecture"], "variant": cfg.get("variant", "")}
    img.platforms = (platform_string(plat),)
    if platforms and normalize_platform(plat) not in {normalize_platform(p) for p in platforms}:
        raise FetchError(
            f"image {img.ref}: is a single-platform image for {img.platforms[0]}, but the bundle targets "
            f"{', '.join(platforms)}. Use a tag built for the target (or a multi-arch tag)."
        )


def _items(client: RegistryClient, images: Sequence[ResolvedImage], digests: Iterable[str] | None = None) -> list[Item]:
    """One download per distinct digest, labelled with every image that uses it."""
    users: dict[str, list[ResolvedImage]] = {}
    for img in images:
        for d in img.blobs:
            users.setdefault(d, []).append(img)
    wanted = set(digests) if digests is not None else set(users)
    items = []
    for d, imgs in users.items():
        if d not in wanted:
            continue
        first = imgs[0]
        also = f" (also used by {', '.join(str(i.ref) for i in imgs[1:])})" if len(imgs) > 1 else ""
        items.append(Item(client.blob_url(first.ref, d), "sha256", d.split(":", 1)[1], first.blobs[d] or None,
                          label=f"image {first.ref} blob {d}{also}"))
    return items


def _options(opts: ImageOptions | None, kw: dict[str, Any]) -> ImageOptions:
    """The options given, or built from keywords (`platforms=..., cache=..., insecure=...`), with a client made once."""
    if opts is None:
        opts = ImageOptions(**kw)
    elif kw:
        raise TypeError(f"give ImageOptions or keywords, not both ({', '.join(kw)})")
    return opts if opts.client is not None else replace(opts, client=opts.registry())


def resolve_images(refs: Sequence[str], opts: ImageOptions | None = None, **kw: Any) -> list[ResolvedImage]:
    """Resolve registry references (in parallel) to manifests and configs; configs are cached, layers untouched."""
    opts = _options(opts, kw)
    client = opts.registry()
    refs = list(dict.fromkeys(refs))
    if not refs:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(opts.workers, len(refs)))) as pool:
        images = list(pool.map(lambda t: resolve_one(client, t, opts.platforms), refs))
    configs = {c for img in images for c in img.configs}
    fetch_all(client.session, _items(client, images, configs), opts.cache, workers=opts.workers,
              policy=client.policy)
    for img in images:
        _check_config_platforms(img, opts.cache, opts.platforms)
    return images


def plan_images(refs: Sequence[str], opts: ImageOptions | None = None, **kw: Any) -> list[ImageRecord]:
    """For `bundler plan`: digest, media type, size and platforms of every image, without layer downloads.

    docker-daemon: entries are described from the daemon (image ID and size) without exporting them.
    """
    opts = _options(opts, kw)
    daemon = [r for r in refs if r.startswith(DAEMON_PREFIX)]
    remote = [r for r in refs if not r.startswith(DAEMON_PREFIX)]
    out = [img.record() for img in resolve_images(remote, opts)]
    out += [describe_daemon_image(r) for r in daemon]
    return out


def pull_images(
    refs: Sequence[str],
    store: Path | str,
    opts: ImageOptions | None = None,
    *,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    stats: Stats | None = None,
    **kw: Any,
) -> list[ImageRecord]:
    """Pull refs into the OCI layout at store and return their bundle.json records (in the order given).

    platforms: ["linux/amd64"] stores that child of multi-arch images; several (or None) keep whole
    indexes. `progress(delta_bytes)` is called from the download threads; `on_total(bytes)` once before.
    `docker-daemon:NAME:TAG` entries are exported from the local Docker daemon instead.
    """
    opts = _options(opts, kw)
    client, cache = opts.registry(), opts.cache
    layout = OCILayout(store)
    refs = list(dict.fromkeys(refs))
    remote = [r for r in refs if not r.startswith(DAEMON_PREFIX)]
    images = resolve_images(remote, opts)
    missing = {d for img in images for d in img.blobs if not layout.has_blob(d)}
    items = _items(client, images, missing)
    if on_total:
        on_total(sum(it.size or 0 for it in items))
    paths = fetch_all(client.session, items, cache, workers=opts.workers, progress=progress, stats=stats,
                      policy=client.policy)
    for it, path in paths.items():
        layout.add_blob_file(f"sha256:{it.digest}", path)
    by_text: dict[str, ImageRecord] = {}
    for text, img in zip(remote, images):
        for m in img.manifests:
            layout.add_blob_bytes(m.digest, m.data)
        layout.add_reference(img.name, img.top.media_type, img.top.digest, img.top.size)
        by_text[text] = img.record()
    if len(remote) < len(refs):
        for text in refs:
            if text.startswith(DAEMON_PREFIX):
                by_text[text] = export_daemon_image(text, layout, cache)
    layout.write_index()
    return [by_text[t] for t in refs]
