"""Upgrade hops in a bundle (spec.kubernetes.upgradeThrough): what each hop ships and how bundle.json, the lock
and `bundler plan` name it. The hop's RPMs and images are ordinary entries of the bundle's package and image
lists; a hop only names them, so the installer's upgrade finds each release's kubeadm, kubelet, kubectl and
control-plane images (contract: docs/bundle-format.md, `kubernetes.hops`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ManifestError
from .fetch.cache import Cache
from .fetch.download import Stats
from .lock import PackageEntry
from .manifest.hops import upgrade_from
from .manifest.model import Manifest
from .rpm.package import Package

if TYPE_CHECKING:  # a warm `bundler plan` loads neither requests nor libsolv (bundler/rpm/plancache.py)
    import requests


@dataclass
class Hop:
    """One intermediate release: its kubeadm/kubelet/kubectl (NEVRA without epoch) and its kubeadm's images."""

    version: str
    packages: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    images_from: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "imagesFrom": self.images_from, "images": list(self.images),
                "packages": list(self.packages)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Hop:
        return cls(str(d["version"]), list(d.get("packages") or []), list(d.get("images") or []),
                   d.get("imagesFrom"))


def nevra(p: Package | PackageEntry) -> str:
    """'kubeadm-1.31.5-150500.1.1.x86_64': how bundle.json's hops name a package (the epoch left out)."""
    if isinstance(p, Package):
        return f"{p.name}-{p.version}-{p.release}.{p.arch}"
    return f"{p['name']}-{p['version']}-{p['release']}.{p['arch']}"


def resolve_hop(m: Manifest, version: str, packages: Sequence[Package], shipped: Sequence[PackageEntry],
                session: requests.Session, cache: Cache, *, ask_kubeadm: str, stats: Stats | None) -> Hop:
    """A hop's record: its solved packages and the images its own kubeadm lists (asked as the target's is:
    the shipped kubeadm of that release, else a kubeadm of it on PATH, else the built-in table)."""
    from .images.list import kubeadm_image_list, table_knows
    from .images.shipped_kubeadm import shipped_kubeadm_images

    asked = None
    if ask_kubeadm != "no":
        download = ask_kubeadm == "download" or not table_knows(version)
        asked = shipped_kubeadm_images(m, shipped, [], session, cache, download=download, stats=stats,
                                       version=version)
    try:
        images, source = kubeadm_image_list(version, asked)
    except ManifestError as e:
        raise ManifestError(f"{m.file}: spec.kubernetes.upgradeThrough {version}: "
                            f"{str(e).replace(f'spec.kubernetes.version {version}: ', '', 1)}") from None
    return Hop(version, sorted(nevra(p) for p in packages), images, source)


def kubernetes_section(m: Manifest, images_from: str | None, hops: Sequence[Hop]) -> dict[str, Any] | None:
    """bundle.json's `kubernetes`: the target, where its image list came from, the hops and the oldest minor
    the bundle upgrades from."""
    if not m.kubernetes_version:
        return None
    return {"version": m.kubernetes_version, "imagesFrom": images_from,
            "upgradeFrom": upgrade_from(m.kubernetes_version, m.upgrade_through),
            "hops": [h.to_json() for h in hops]}
