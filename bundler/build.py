"""`bundler plan`, `bundler lock` and `bundler build`: the pipeline from a manifest to a bundle.

The bundle is assembled in a staging tree inside the cache directory, made of hard links to cached
blobs (same filesystem, so no payload is copied and no extra disk is needed), then streamed into the
tarball under a temporary name that is renamed only when complete: a failed or interrupted build never
leaves a partial bundle where the operator expects one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast
from urllib.parse import urljoin

import requests

from . import __version__
from .bundle.installer_files import add_installer
from .bundle.tarball import FORMATS, write_tarball
from .errors import BundlerError
from .fetch.cache import Cache
from .fetch.download import Item, Stats, cancel_downloads, fetch_all
from .fetch.http import apply_mirrors, make_session
from .files.fetch import FileRecord, fetch_files, file_specs
from .lock import PackageEntry, lock_path, make_lock, manifest_dict, read_lock
from .manifest.model import Manifest
from .progress import ByteProgress, Stages
from .rpm.closure import Closure, resolve
from .rpm.repo_writer import place, write_repo
from .rpm.repomd import RepoReader
from .rpm.solver import Package

if TYPE_CHECKING:  # imported when first used: `bundler plan` of a manifest without images needs no registry code
    from .registry.client import RegistryClient


@dataclass
class Inputs:
    """Everything a build fetches, pinned: from a fresh resolution or from the lock."""

    packages: list[PackageEntry]  # shipped RPMs
    from_media: list[PackageEntry]
    modules_yaml: str | None
    files: list[FileRecord]
    image_refs: list[str]
    image_pins: dict[str, str] = field(default_factory=dict)  # ref -> digest (locked builds)
    kubeadm_images_from: str | None = None  # the shipped kubeadm, kubeadm on PATH, the built-in table, the lock
    used_filelists: bool = False
    cached: dict[str, Path] = field(default_factory=dict)  # nevra -> RPM in the cache, once downloaded
    module_streams: list[str] = field(default_factory=list)  # NAME:STREAM solved with; the hosts enable them
    warnings: list[str] = field(default_factory=list)


STEP_ORDER = ("resolve", "files", "packages", "images", "write")  # the summary's rows, always in this order


@dataclass
class StepStat:
    """One row of the build summary. `count` counts `unit`; `objects` counts what was asked of the cache (RPMs,
    files, image blobs, the kubeadm RPM) and `cache_hits` is in that same unit: how many of them needed no
    download."""

    count: int = 0
    unit: str = ""
    bytes: int = 0
    seconds: float = 0.0
    objects: int = 0
    cache_hits: int = 0

    @classmethod
    def of(cls, count: int, unit: str, nbytes: int, seconds: float, stats: Stats | None = None) -> StepStat:
        objects = stats.downloaded + stats.cache_hits if stats else 0
        return cls(count, unit, nbytes, seconds, objects, stats.cache_hits if stats else 0)


@dataclass
class BuildResult:
    path: Path
    inputs: Inputs
    images: list[dict]
    lock: dict
    steps: dict[str, StepStat]
    stats: Stats
    sha256: str | None = None  # of the tarball, also written beside it as NAME.sha256 (sha256sum -c format)
    sha256_path: Path | None = None


def _pkg_entry(p: Package, original_baseurl: str) -> PackageEntry:
    """The solver's package as the lock records it (the rest of the build reads only this)."""
    return cast(PackageEntry, {**p.to_json(), "nevra": p.nevra, "url": urljoin(original_baseurl, p.location),
                               "algo": p.algo, "digest": p.digest})


def resolve_inputs(m: Manifest, cache: Cache, session: requests.Session, lock: dict | None = None,
                   stats: Stats | None = None, ask_kubeadm: str = "download", stages: Stages | None = None,
                   file_stats: Stats | None = None) -> Inputs:
    """Solve packages (or take them from the lock) and fetch the small files (CNI manifests decide images).

    ask_kubeadm: "download" fetches the shipped kubeadm to ask it for its images, "cached" asks it only if it is
    already in the cache (`plan` downloads no package) or the table does not know the release, "no" keeps to
    the table. stages shows and times each part: "resolve" (metadata, solver, kubeadm) and "files" (file
    downloads, counted in file_stats when given).
    """
    stages = stages or Stages(enabled=False)
    file_stats = file_stats or stats
    if lock is not None:
        inputs = Inputs(lock["packages"], [], lock.get("modulesYaml"), [], [], module_streams=lock.get("modules", []))
        locked_files = {f["name"]: f for f in lock["files"]}
        with stages.stage("files", f"files: {len(locked_files)} pinned by the lock"):
            inputs.files = fetch_files(m, file_specs(m, locked_files), session, cache, file_stats)
        # say what pinned each file first (its publisher, ...), as the unlocked build of the same inputs does
        inputs.files = [dataclasses.replace(f, pinned_by=locked_files.get(f.name, {}).get("pinnedBy", f.pinned_by))
                        for f in inputs.files]
        inputs.image_refs = [i["ref"] for i in lock["images"]]
        inputs.image_pins = {i["ref"]: i["digest"] for i in lock["images"]}
        inputs.kubeadm_images_from = lock.get("kubeadmImagesFrom", "the lock") if m.kubernetes_version else None
        return inputs
    with stages.stage("resolve", f"resolve: reading the metadata of {len(m.repos)} repos and solving"):
        closure = resolve(m, RepoReader(session, cache, m.mirrors))
    repos = {r.name: r for r in m.repos}
    shipped = [_pkg_entry(p, repos[p.repo].baseurl) for p in closure.shipped]
    media = [_pkg_entry(p, repos[p.repo].baseurl) for p in closure.from_media]
    modules_yaml = closure.modules_yaml()
    specs = file_specs(m)
    with stages.stage("files", f"files: {len(specs)} to fetch or take from the cache"):
        files = fetch_files(m, specs, session, cache, file_stats)
    from .images.list import image_list, table_knows
    from .images.shipped_kubeadm import shipped_kubeadm_images

    asked = None
    if m.kubernetes_version and ask_kubeadm != "no":
        download = ask_kubeadm == "download" or not table_knows(m.kubernetes_version)
        with stages.stage("resolve", "resolve: asking the shipped kubeadm which images it needs"):
            asked = shipped_kubeadm_images(m, shipped, files, session, cache, download=download, stats=stats)
    cni = [f.cached.read_text(encoding="utf-8", errors="replace") for f in files if f.kind == "manifest"]
    refs, source = image_list(m.kubernetes_version, cni, m.images, asked)
    return Inputs(shipped, media, modules_yaml, files, refs, used_filelists=closure.used_filelists,
                  kubeadm_images_from=source, module_streams=closure.host_streams(), warnings=closure.warnings)


def resolve_packages(m: Manifest, cache: Cache) -> Closure:
    """Only the RPM closure (no files, no images): the seam the solver's tests (tests/builder/test_rpm_*) use."""
    return resolve(m, RepoReader(make_session(), cache, m.mirrors))


def _registry_client(m: Manifest, insecure: tuple[str, ...], pool: int = 16) -> RegistryClient:
    """spec.registries plus --insecure-registry; built first so a missing credential variable fails before work."""
    from .registry.access import registry_client

    return registry_client(m.mirrors, m.registries, insecure, pool=pool, source=m.file)


def plan(m: Manifest, cache: Cache, stages: Stages | None = None, insecure: tuple[str, ...] = ()) -> dict:
    """What a build would fetch (RPMs, images with digests, files), downloading no RPM or layer."""
    client = _registry_client(m, insecure)
    session = make_session()
    inputs = resolve_inputs(m, cache, session, ask_kubeadm="cached", stages=stages)
    images = _plan_images(m, inputs, cache, client)
    return {
        "bundle": m.bundle_basename,
        "target": {"os": m.target.os, "arch": m.target.arch},
        "prefer": m.prefer,
        "packages": [_public(p) for p in inputs.packages],
        "fromMedia": [_public(p) for p in inputs.from_media],
        "modules": inputs.module_streams,
        "warnings": inputs.warnings,
        "images": images,
        "kubeadmImagesFrom": inputs.kubeadm_images_from,
        "files": [f.to_json() for f in inputs.files],
        "totals": {
            "packages": len(inputs.packages), "packageBytes": sum(p["size"] for p in inputs.packages),
            "images": len(images), "imageBytes": sum(i["size"] for i in images),
            "files": len(inputs.files), "fileBytes": sum(f.size for f in inputs.files),
        },
    }


def _public(p: PackageEntry) -> dict:
    return {k: p[k] for k in ("name", "epoch", "version", "release", "arch", "repo", "size", "sha256", "checksum",
                              "license", "location") if k in p}


def _plan_images(m: Manifest, inputs: Inputs, cache: Cache, client: RegistryClient) -> list[dict]:
    if not inputs.image_refs:
        return []
    from .images.pull import ImageOptions, plan_images

    opts = ImageOptions(platforms=[m.target.oci_platform], cache=cache, client=client)
    return [r.to_dict() for r in plan_images(inputs.image_refs, opts)]


def lock(m: Manifest, cache: Cache, stages: Stages | None = None,
         insecure: tuple[str, ...] = ()) -> tuple[Path, dict]:
    """Resolve everything and write MANIFEST.lock next to the manifest."""
    from .lock import write_lock

    client = _registry_client(m, insecure)
    session = make_session()
    inputs = resolve_inputs(m, cache, session, stages=stages)
    data = make_lock(m, inputs.packages, inputs.modules_yaml, _plan_images(m, inputs, cache, client),
                     [f.to_json() for f in inputs.files], inputs.module_streams,
                     images_from=inputs.kubeadm_images_from)
    path = lock_path(m.file)
    write_lock(path, data)
    return path, data


def build(
    m: Manifest,
    out_dir: Path,
    cache: Cache,
    *,
    jobs: int = 8,
    quiet: bool = False,
    locked: bool = False,
    fmt: str = "tar.gz",
    sign_key: str | None = None,
    insecure: tuple[str, ...] = (),
) -> BuildResult:
    if fmt not in (*FORMATS, "dir"):
        raise BundlerError(f"--format {fmt!r} is not one of {', '.join((*FORMATS, 'dir'))}.")
    if sign_key:  # before any download: a missing key must not cost the operator the whole build
        from .bundle.signkey import check_sign_key

        check_sign_key(sign_key)
    steps: dict[str, StepStat] = {}
    stats = Stats()
    session = make_session(pool=max(jobs, 4))
    client = _registry_client(m, insecure, pool=max(jobs, 4))
    lock_data = read_lock(lock_path(m.file), m) if locked else None

    stages = Stages(enabled=not quiet)
    resolve_stats, file_stats = Stats(), Stats()
    inputs = resolve_inputs(m, cache, session, lock_data, resolve_stats, stages=stages, file_stats=file_stats)
    pinned = len(inputs.packages) + len(inputs.image_refs) + len(inputs.files)
    steps["resolve"] = StepStat.of(pinned, "artifacts pinned", 0, stages.seconds.get("resolve", 0.0), resolve_stats)
    steps["files"] = StepStat.of(len(inputs.files), "files", sum(f.size for f in inputs.files),
                                 stages.seconds.get("files", 0.0), file_stats)
    for s in (resolve_stats, file_stats):
        _add_stats(stats, s)

    cache.root.mkdir(parents=True, exist_ok=True)
    staging = cache.root / "staging" / f"{m.bundle_basename}.{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        images = _download(m, inputs, staging, cache, session, jobs, quiet, stats, steps, client)
        images.sort(key=lambda i: i["ref"])  # the lock's order: locked and unlocked builds give the same bytes
        t = time.monotonic()
        lock_used = lock_data or make_lock(m, inputs.packages, inputs.modules_yaml, images,
                                           [f.to_json() for f in inputs.files], inputs.module_streams,
                                           images_from=inputs.kubeadm_images_from)
        _assemble(m, inputs, images, lock_used, staging, cache)
        sums_file = out_dir / f"{m.bundle_basename}.{fmt}.sha256"
        sums_file.unlink(missing_ok=True)  # never a stale checksum beside a new tarball
        result_path = _write_output(m, staging, out_dir, fmt, sign_key, quiet)
        digest = None
        if result_path.is_file():
            digest = _write_sha256(result_path, sums_file)
        steps["write"] = StepStat.of(1, fmt, result_path.stat().st_size if result_path.is_file() else 0,
                                     time.monotonic() - t)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    steps = {k: steps.get(k, StepStat()) for k in STEP_ORDER}
    return BuildResult(result_path, inputs, images, lock_used, steps, stats, digest,
                       sums_file if digest else None)


def _add_stats(total: Stats, part: Stats) -> None:
    total.add(downloaded=part.downloaded, downloaded_bytes=part.downloaded_bytes, cache_hits=part.cache_hits,
              retries=part.retries)


def _write_sha256(tarball: Path, dest: Path) -> str:
    """NAME.sha256 beside the tarball, in `sha256sum -c` format, written atomically (INSTALL.md asks for it)."""
    from .bundle.sums import atomic_write_bytes, format_sums, sha256_file

    digest = sha256_file(tarball)
    atomic_write_bytes(dest, format_sums({tarball.name: digest}).encode())
    return digest


def _download(m: Manifest, inputs: Inputs, staging: Path, cache: Cache, session: requests.Session, jobs: int,
              quiet: bool, stats: Stats, steps: dict[str, StepStat], client: RegistryClient) -> list[dict]:
    """RPMs and image blobs in parallel, under one progress display."""
    items = {
        p["nevra"]: Item(apply_mirrors(p["url"], m.mirrors), p["algo"], p["digest"], p["size"] or None,
                         label=f"{p['nevra']} (repo '{p['repo']}')")
        for p in inputs.packages
    }
    rpm_bytes = sum(i.size or 0 for i in items.values())
    images: list[dict] = []
    rpm_stats, img_stats = Stats(), Stats()
    with ByteProgress(rpm_bytes, "downloading", enabled=not quiet) as bar:
        def rpms() -> dict[Item, Path]:
            t = time.monotonic()
            paths = fetch_all(session, items.values(), cache, workers=jobs, progress=bar, stats=rpm_stats)
            steps["packages"] = StepStat.of(len(items), "RPMs", rpm_bytes, time.monotonic() - t, rpm_stats)
            return paths

        def pull() -> list[dict]:
            t = time.monotonic()
            if not inputs.image_refs:
                steps["images"] = StepStat(unit="images")
                return []
            from .images.pull import ImageOptions, pull_images

            refs = [f"{r}@{inputs.image_pins[r]}" if r in inputs.image_pins and "@" not in r else r
                    for r in inputs.image_refs]
            lock_ = threading.Lock()

            def grow(n: int) -> None:
                with lock_:
                    bar.bar.total = (bar.bar.total or 0) + n
                    bar.bar.refresh()

            opts = ImageOptions(platforms=[m.target.oci_platform], cache=cache, client=client, workers=jobs)
            recs = pull_images(refs, staging / "images", opts, progress=bar, on_total=grow, stats=img_stats)
            out = [r.to_dict() for r in recs]
            steps["images"] = StepStat.of(len(out), "images", sum(r["size"] for r in out), time.monotonic() - t,
                                          img_stats)
            return out

        with ThreadPoolExecutor(max_workers=2) as pool:
            rpm_future = pool.submit(rpms)
            img_future = pool.submit(pull)
            try:
                paths = rpm_future.result()
                images = img_future.result()
            except BaseException as e:
                rpm_future.cancel()
                img_future.cancel()
                if isinstance(e, KeyboardInterrupt):
                    cancel_downloads()  # the workers run in other threads: stop them within a second
                raise
    for s in (rpm_stats, img_stats):
        _add_stats(stats, s)
    inputs.cached = {nevra: paths[item] for nevra, item in items.items()}
    return images


def _assemble(m: Manifest, inputs: Inputs, images: list[dict], lock_used: dict, root: Path, cache: Cache) -> None:
    from .bundle.sums import sha256_file

    repo = root / "repo"
    placed: list[Path] = []
    sha256: dict[str, str] = {}  # nevra -> sha256 of the RPM (repos with other checksum types need it computed)
    for p in inputs.packages:
        dest = repo / "Packages" / p["location"].rsplit("/", 1)[-1]
        place(inputs.cached[p["nevra"]], dest)
        placed.append(dest)
        sha256[p["nevra"]] = p.get("sha256") or sha256_file(dest)
    for f in inputs.files:
        dest = root / f.path
        place(f.cached, dest)
        os.chmod(dest, 0o755 if f.kind == "binary" else 0o644)
        if f.kind == "rpm":
            placed.append(dest)
    if placed or m.repos:  # an empty repo is still a repo: the hosts' repo files can point at it
        write_repo(repo, placed, modules_yaml=inputs.modules_yaml)
    add_installer(root, m)
    bom = {
        "schemaVersion": 1,
        "builder": {"name": "airgap-bundler", "version": __version__},
        "name": m.name,
        "version": m.version,
        "target": {"os": m.target.os, "arch": m.target.arch},
        "kubernetes": {"version": m.kubernetes_version, "imagesFrom": inputs.kubeadm_images_from}
        if m.kubernetes_version else None,
        "runtime": m.runtime,
        "cni": m.cni,
        "install": m.install,
        "manifest": manifest_dict(m),
        "lock": lock_used,
        "packages": [
            {**_public(p), "nevra": p["nevra"], "path": f"repo/Packages/{p['location'].rsplit('/', 1)[-1]}",
             "sha256": sha256[p["nevra"]], "source": p["url"]}
            for p in inputs.packages
        ],
        "images": images,
        "files": [f.to_json() for f in inputs.files],
        "media": [{"name": r.name, "baseurl": r.baseurl} for r in m.media_repos],
        "modules": inputs.module_streams,  # NAME:STREAM the solve used; the installer enables exactly these
    }
    (root / "bundle.json").write_text(json.dumps(bom, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _write_output(m: Manifest, staging: Path, out_dir: Path, fmt: str, sign_key: str | None, quiet: bool) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    base = m.bundle_basename
    if fmt == "dir":
        final = out_dir / base
        tmp = out_dir / f".{base}.partial-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(staging, tmp, copy_function=_link_or_copy)
        from .bundle.sums import format_sums, sha256_file

        sums = {p.relative_to(tmp).as_posix(): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        (tmp / "SHA256SUMS").write_text(format_sums(sums))
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        return final
    final = out_dir / f"{base}.{fmt}"
    tmp = out_dir / f".{final.name}.partial-{os.getpid()}"
    sign = None
    if sign_key:
        from .bundle.sign import sign_bytes

        def sign(text: bytes) -> bytes:
            return sign_bytes(text, sign_key)
    total = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
    try:
        with ByteProgress(total, "writing bundle", enabled=not quiet) as bar:
            write_tarball(staging, tmp, top=base, fmt=fmt, sign=sign, progress=bar)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


