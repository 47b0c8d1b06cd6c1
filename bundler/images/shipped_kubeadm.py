"""Ask the kubeadm the bundle ships which images `kubeadm init` will pull.

The hosts run exactly that kubeadm, and patch releases move the etcd and CoreDNS tags it asks for; the
built-in table (images/list.py) can lag behind them. So when this machine can run the target's binaries,
the build unpacks kubeadm from its RPM (or takes the `install: binaries` download) into a scratch root and
runs `kubeadm config images list`, which needs no network and no cluster.
"""

from __future__ import annotations

import logging
import platform
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import requests
import rpmfile

from ..fetch.cache import Cache
from ..fetch.download import Item, Stats, fetch
from ..fetch.http import apply_mirrors
from ..files.fetch import FileRecord
from ..lock import PackageEntry
from ..manifest.model import Manifest
from .list import kubeadm_images_from_binary

log = logging.getLogger("bundler")
_MACHINE = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def can_run(arch: str) -> bool:
    """Can this machine execute a Linux binary built for the target's arch?"""
    return platform.system() == "Linux" and _MACHINE.get(platform.machine().lower()) == arch


def unpack_rpm(rpm: Path, dest: Path) -> None:
    """Write the RPM's regular files under dest (paths kept, nothing outside dest)."""
    with rpmfile.open(str(rpm)) as r:
        for member in r.getmembers():
            rel = PurePosixPath(member.name.lstrip("/"))
            if member.isdir or ".." in rel.parts or not rel.parts or rel.parts == (".",):
                continue
            target = dest.joinpath(*[p for p in rel.parts if p != "."])
            target.parent.mkdir(parents=True, exist_ok=True)
            with r.extractfile(member) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)


def shipped_kubeadm_images(
    m: Manifest,
    packages: Sequence[PackageEntry],
    files: list[FileRecord],
    session: requests.Session,
    cache: Cache,
    *,
    download: bool = True,
    stats: Stats | None = None,
    version: str | None = None,
) -> list[str] | None:
    """The shipped kubeadm's image list; None when there is no kubeadm to ask, this machine cannot run it,
    it is another release than `version` (default spec.kubernetes.version; a hop's for upgradeThrough), or it
    fails (the caller falls back to the table). A bundle with hops ships several kubeadm RPMs: the one of
    `version` is asked."""
    version = version or m.kubernetes_version
    if not version or not can_run(m.target.arch):
        return None
    if cache.writable:
        cache.root.mkdir(parents=True, exist_ok=True)
    scratch = cache.root if cache.writable else cache.scratch()  # a read-only cache: outside it
    with tempfile.TemporaryDirectory(prefix="kubeadm-", dir=scratch) as tmp:
        exe = Path(tmp) / "usr" / "bin" / "kubeadm"
        if m.install == "binaries":
            rec = next((f for f in files if f.name == "kubeadm"), None)
            if rec is None:
                return None
            exe.parent.mkdir(parents=True)
            shutil.copyfile(rec.cached, exe)
        else:
            pkg = next((p for p in packages if p["name"] == "kubeadm" and p["version"] == version), None)
            if pkg is None:
                return None
            rpm = cache.get(pkg["algo"], pkg["digest"])
            if rpm is None and download:
                item = Item(apply_mirrors(pkg["url"], m.mirrors), pkg["algo"], pkg["digest"], pkg["size"] or None,
                            label=f"{pkg['nevra']} (repo '{pkg['repo']}')")
                rpm = fetch(session, item, cache, stats=stats)
            if rpm is None:
                return None
            try:
                unpack_rpm(rpm, Path(tmp))
            except Exception as e:  # any unreadable payload means: use the table
                log.warning("could not unpack kubeadm from %s (%s): using the built-in image table", pkg["nevra"], e)
                return None
            if not exe.is_file():
                return None
        exe.chmod(0o755)
        return kubeadm_images_from_binary(version, str(exe))
