"""The lockfile: every input of a bundle pinned by checksum, so a build can be repeated exactly.

`bundler lock` writes it next to the manifest; `bundler build --locked` fetches exactly what it lists
(no solving, no tag lookups) and fails clearly when an upstream no longer has an artifact.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

from .errors import ManifestError
from .manifest.model import Manifest

LOCK_VERSION = 1


class PackageEntry(TypedDict):
    """One shipped (or from-media) RPM as the lock, bundle.json and the download step see it: a plain dict on the
    wire (lock, JSON) and in the build, typed so that a misspelt key is a type error, not a KeyError at the end."""

    name: str
    epoch: int
    version: str
    release: str
    arch: str
    repo: str
    size: int
    sha256: str | None
    checksum: str  # ALGO:HEX as the repository's metadata gives it
    location: str  # relative to the repository's baseurl
    license: str
    nevra: str
    url: str  # location joined to the repository's original (unmirrored) baseurl
    algo: str
    digest: str


def lock_path(manifest_file: Path) -> Path:
    return manifest_file.with_name(manifest_file.name + ".lock")


def manifest_dict(m: Manifest) -> dict[str, Any]:
    """The validated manifest (includes merged) as plain data, for bundle.json and the lock's digest."""
    d = dataclasses.asdict(m)
    d.pop("file")
    d.pop("registries", None)  # how registries are reached (CA, credentials) is not content: no new lock for it
    if not d.get("upgrade_through"):
        d.pop("upgrade_through", None)  # absent as before hops existed: locks of hop-less manifests stay valid
    return json.loads(json.dumps(d, sort_keys=True, default=str))


def manifest_digest(m: Manifest) -> str:
    return hashlib.sha256(json.dumps(manifest_dict(m), sort_keys=True).encode()).hexdigest()


def make_lock(m: Manifest, packages: list[PackageEntry], modules_yaml: str | None, images: list[dict],
              files: list[dict], modules: Sequence[str] = (), images_from: str | None = None,
              hops: Sequence[dict] = ()) -> dict[str, Any]:
    """images_from: where Kubernetes' image list came from, so a --locked build reports the same as the first.
    hops: spec.kubernetes.upgradeThrough as bundle.json names them (the key only when there are some, so the
    lock of a manifest without hops is what it was before hops existed)."""
    lock = {
        "lockVersion": LOCK_VERSION,
        "manifest": {"name": m.name, "version": m.version, "sha256": manifest_digest(m)},
        "packages": sorted(packages, key=lambda p: (p["name"], p["arch"], p["nevra"])),
        "modulesYaml": modules_yaml,
        "modules": list(modules),  # module streams the solve used (NAME:STREAM)
        "images": sorted(images, key=lambda i: i["ref"]),
        "files": sorted(files, key=lambda f: f["name"]),
        "kubeadmImagesFrom": images_from,
    }
    if hops:
        lock["hops"] = list(hops)
    return lock


def write_lock(path: Path, lock: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def read_lock(path: Path, m: Manifest) -> dict[str, Any]:
    """Load a lock and check it belongs to this exact manifest."""
    try:
        lock = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path}: no lockfile. Create it with `bundler lock {m.file}` first.") from None
    except (OSError, json.JSONDecodeError) as e:
        raise ManifestError(f"{path}: the lockfile cannot be read ({e}). Recreate it with `bundler lock`.") from None
    if lock.get("lockVersion") != LOCK_VERSION:
        raise ManifestError(f"{path}: lock version {lock.get('lockVersion')!r} is not supported by this bundler "
                            f"(expects {LOCK_VERSION}). Recreate it with `bundler lock`.")
    if lock.get("manifest", {}).get("sha256") != manifest_digest(m):
        raise ManifestError(f"{path}: the manifest {m.file} changed since this lock was written. Run `bundler lock "
                            f"{m.file}` to update the lock (and review the change), then build again.")
    return lock
