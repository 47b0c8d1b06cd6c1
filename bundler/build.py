"""`bundler plan`, `bundler lock` and `bundler build`: the pipeline from a manifest to a bundle.

The bundle is assembled in a staging tree in the output directory (`.NAME.staging-PID-TOKEN`), made of
hard links to cached blobs where the filesystem allows (else copies), so a read-only shared cache still
builds. It is then streamed into the tarball under a temporary name that is renamed only when complete: a
failed or interrupted build never leaves a partial bundle where the operator expects one, and the next
build of the same bundle removes what a killed one left. Every shipped byte is checked, in the pass that
writes it, against the digest bundle.json records; a corrupt cache entry is evicted, fetched again and the
bundle rewritten, so SHA256SUMS and bundle.json never disagree.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast
from urllib.parse import urljoin

from . import __version__
from .bundle.installer_files import add_installer
from .bundle.space import SpaceCheck
from .bundle.sums import DigestMismatch
from .bundle.workspace import DISK_ERRNOS, Workspace, clean_legacy_staging, clean_stale
from .errors import BundlerError, FetchError
from .fetch.cache import Cache
from .fetch.download import Item, Stats, cancel_downloads, fetch, fetch_all
from .fetch.http import apply_mirrors, lazy_session, make_session
from .fetch.lease import Lease
from .files.fetch import FileRecord, fetch_files, file_specs
from .hops import Hop, kubernetes_section, resolve_hop
from .lock import PackageEntry, lock_path, make_lock, manifest_dict, read_lock
from .manifest.model import Manifest
from .progress import ByteProgress, Stages
from .rpm.package import Package
from .rpm.plancache import resolve_cached
from .rpm.repo_writer import place, write_repo
from .rpm.repomd import RepoReader

if TYPE_CHECKING:  # imported when first used: `bundler plan` of a manifest without images needs no registry code
    import requests

    from .bundle.delta import Base
    from .registry.client import RegistryClient
    from .rpm.closure import Closure


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
    hops: list[Hop] = field(default_factory=list)  # spec.kubernetes.upgradeThrough, each named in bundle.json


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
    delta: dict | None = None  # a delta bundle: what it left out, per kind ({"packages": {"count", "bytes"}, ...})
    unchanged: bool = False  # the tarball this build would write was there already, every byte checked (reuse.py)


def _pkg_entry(p: Package, original_baseurl: str) -> PackageEntry:
    """The solver's package as the lock records it (the rest of the build reads only this)."""
    return cast(PackageEntry, {**p.to_json(), "nevra": p.nevra, "url": join_location(original_baseurl, p.location),
                               "algo": p.algo, "digest": p.digest})


@functools.lru_cache(maxsize=256)
def _dir_url(base: str, directory: str) -> str:
    return urljoin(base, directory + "/" if directory else "./")


def join_location(base: str, location: str) -> str:
    """urljoin(base, location), with the join of each (base, directory) done once: thousands of packages share
    a few directories, and urljoin costs more than the rest of their plan entries. Locations with anything
    urljoin treats specially (a scheme, an absolute path, in the file name anything but plain characters, dot
    segments) take urljoin."""
    directory, _, name = location.rpartition("/")
    if ":" in location or location.startswith("/") or name in (".", "..") or not _PLAIN_NAME.match(name):
        return urljoin(base, location)
    return _dir_url(base, directory) + name


_PLAIN_NAME = re.compile(r"[\w.+~^@=,!-]+\Z")


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
        inputs.hops = [Hop.from_json(h) for h in lock.get("hops") or []]
        return inputs
    with stages.stage("resolve", f"resolve: reading the metadata of {len(m.repos)} repos and solving"):
        closure = resolve_cached(m, RepoReader(session, cache, m.mirrors))  # the plan cache, else the solver
    repos = {r.name: r for r in m.repos}
    shipped = [_pkg_entry(p, repos[p.repo].baseurl) for p in closure.shipped]
    media = [_pkg_entry(p, repos[p.repo].baseurl) for p in closure.from_media]
    modules_yaml = closure.modules_yaml
    specs = file_specs(m)
    with stages.stage("files", f"files: {len(specs)} to fetch or take from the cache"):
        files = fetch_files(m, specs, session, cache, file_stats)
    from .images.list import image_list, table_knows

    asked = None
    if m.kubernetes_version and ask_kubeadm != "no":
        from .images.shipped_kubeadm import shipped_kubeadm_images

        download = ask_kubeadm == "download" or not table_knows(m.kubernetes_version)
        with stages.stage("resolve", "resolve: asking the shipped kubeadm which images it needs"):
            asked = shipped_kubeadm_images(m, shipped, files, session, cache, download=download, stats=stats)
    hops = []
    for version in m.upgrade_through if m.kubernetes_version else ():
        with stages.stage("resolve", f"resolve: asking the kubeadm of hop {version} which images it needs"):
            hops.append(resolve_hop(m, version, closure.hops.get(version, []), shipped, session, cache,
                                    ask_kubeadm=ask_kubeadm, stats=stats))
    cni = [_checked_text(m, f, cache, session, stats) for f in files if f.kind == "manifest"]
    refs, source = image_list(m.kubernetes_version, cni, m.images, asked)
    refs = list(dict.fromkeys([*refs, *(i for h in hops for i in h.images)]))
    return Inputs(shipped, media, modules_yaml, files, refs, used_filelists=closure.used_filelists,
                  kubeadm_images_from=source, module_streams=closure.host_streams, warnings=closure.warnings,
                  hops=hops)


def resolve_packages(m: Manifest, cache: Cache) -> Closure:
    """Only the RPM closure (no files, no images): the seam the solver's tests (tests/builder/test_rpm_*) use."""
    from .rpm.closure import resolve

    return resolve(m, RepoReader(make_session(), cache, m.mirrors))


def _registry_client(m: Manifest, insecure: tuple[str, ...], pool: int = 16) -> RegistryClient:
    """spec.registries plus --insecure-registry; built first so a missing credential variable fails before work."""
    from .registry.access import registry_client

    return registry_client(m.mirrors, m.registries, insecure, pool=pool, source=m.file)


def plan(m: Manifest, cache: Cache, stages: Stages | None = None, insecure: tuple[str, ...] = ()) -> dict:
    """What a build would fetch (RPMs, images with digests, files), downloading no RPM or layer."""
    # a manifest that can name no image needs no registry client; else it is built first (see _registry_client)
    client = _registry_client(m, insecure) if m.images or m.kubernetes_version or m.cni != "none" else None
    session = lazy_session()  # a warm plan of packages only may send no request that needs requests
    try:
        inputs = resolve_inputs(m, cache, session, ask_kubeadm="cached", stages=stages)
        images = _plan_images(m, inputs, cache, client or _registry_client(m, insecure)) if inputs.image_refs else []
    finally:
        cache.close_scratch()  # a read-only cache's temporary files
    return {
        "bundle": m.bundle_basename,
        "target": {"os": m.target.os, "arch": m.target.arch},
        "prefer": m.prefer,
        "kubernetes": kubernetes_section(m, inputs.kubeadm_images_from, inputs.hops),
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
    try:
        inputs = resolve_inputs(m, cache, session, stages=stages)
        data = make_lock(m, inputs.packages, inputs.modules_yaml, _plan_images(m, inputs, cache, client),
                         [f.to_json() for f in inputs.files], inputs.module_streams,
                         images_from=inputs.kubeadm_images_from, hops=[h.to_json() for h in inputs.hops])
    finally:
        cache.close_scratch()  # a read-only cache's temporary files
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
    delta_from: Path | None = None,
) -> BuildResult:
    """Resolve, download and write the bundle; with delta_from (an export-state JSON or an older bundle), a
    delta bundle that leaves out the content the base holds (bundle/delta.py)."""
    from .bundle.tarball import FORMATS  # here, as in _assemble and _write_output: plan and lock write no tarball

    if fmt not in (*FORMATS, "dir"):
        raise BundlerError(f"--format {fmt!r} is not one of {', '.join((*FORMATS, 'dir'))}.")
    if sign_key:  # before any download: a missing key must not cost the operator the whole build
        from .bundle.signkey import check_sign_key

        check_sign_key(sign_key)
    base = None
    if delta_from is not None:  # before any download, like the key: a bad base must not cost a whole build
        from .bundle.delta import check_target, load_base

        base = load_base(Path(delta_from))
        check_target(base, m.target.os, m.target.arch)
    space = SpaceCheck(Path(out_dir), cache, fmt)
    ws = Workspace(Path(out_dir), _basename(m, base))
    cache.scratch_in(ws.scratch)  # a read-only cache's temporary files: beside the staging tree, gone at the end
    try:
        with cache.lease() as lease:
            return _build(m, Path(out_dir), cache, lease, space, ws, jobs=jobs, quiet=quiet, locked=locked,
                          fmt=fmt, sign_key=sign_key, insecure=insecure, base=base)
    except OSError as e:
        if e.errno in DISK_ERRNOS:
            raise space.error(e) from None
        raise
    finally:
        cache.close_scratch()


def _basename(m: Manifest, base: object | None) -> str:
    """The tarball's stem and top directory; a delta bundle says so in its name."""
    from .bundle.delta import SUFFIX

    return m.bundle_basename + (SUFFIX if base is not None else "")


def _build(m: Manifest, out_dir: Path, cache: Cache, lease: Lease, space: SpaceCheck, ws: Workspace, *, jobs: int,
           quiet: bool, locked: bool, fmt: str, sign_key: str | None, insecure: tuple[str, ...],
           base: Base | None = None) -> BuildResult:
    """The build under its cache lease (so a concurrent `cache prune` leaves its files alone)."""
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

    lease.record(_digests(inputs))
    clean_stale(ws.out_dir, ws.base)
    clean_legacy_staging(cache.root, ws.base)
    ws.create()
    try:
        space.before_download(inputs.packages, inputs.files, ws.staging)
        images = _download(m, inputs, ws.staging, cache, session, jobs, quiet, stats, steps, client, space)
        images.sort(key=lambda i: i["ref"])  # the lock's order: locked and unlocked builds give the same bytes
        lease.record(_digests(inputs, images, ws.staging))
        t = time.monotonic()
        lock_used = lock_data or make_lock(m, inputs.packages, inputs.modules_yaml, images,
                                           [f.to_json() for f in inputs.files], inputs.module_streams,
                                           images_from=inputs.kubeadm_images_from,
                                           hops=[h.to_json() for h in inputs.hops])
        sums_file = out_dir / f"{ws.base}.{fmt}.sha256"
        sums_file.unlink(missing_ok=True)  # never a stale checksum beside a new tarball
        result_path, digest, kept = _assemble_and_write(m, inputs, images, lock_used, ws, cache, session, fmt,
                                                        sign_key, quiet, stats, client, space, base)
        if digest is not None:
            _write_sha256(result_path, digest, sums_file)
        steps["write"] = StepStat.of(1, f"{fmt}, unchanged" if kept else fmt,
                                     result_path.stat().st_size if result_path.is_file() else 0, time.monotonic() - t)
    finally:
        ws.close()
    steps = {k: steps.get(k, StepStat()) for k in STEP_ORDER}
    return BuildResult(result_path, inputs, images, lock_used, steps, stats, digest,
                       sums_file if digest else None, base.summary if base is not None else None, kept)


def _add_stats(total: Stats, part: Stats) -> None:
    total.add(downloaded=part.downloaded, downloaded_bytes=part.downloaded_bytes, cache_hits=part.cache_hits,
              retries=part.retries)


def _write_sha256(tarball: Path, digest: str, dest: Path) -> None:
    """NAME.sha256 beside the tarball, in `sha256sum -c` format, written atomically (INSTALL.md asks for it)."""
    from .bundle.sums import atomic_write_bytes, format_sums

    atomic_write_bytes(dest, format_sums({tarball.name: digest}).encode())


def _digests(inputs: Inputs, images: list[dict] | None = None, staging: Path | None = None) -> list[str]:
    """Every cached blob this build ships, "algo:hex", for its lease (so `cache prune` keeps them)."""
    out = [f"{p['algo']}:{p['digest']}" for p in inputs.packages]
    out += [f"sha256:{d}" for f in inputs.files for d in (f.sha256, f.source_sha256)]
    if staging is not None and (staging / "images" / "blobs" / "sha256").is_dir():
        out += [f"sha256:{p.name}" for p in (staging / "images" / "blobs" / "sha256").iterdir()]
    return out


def _download(m: Manifest, inputs: Inputs, staging: Path, cache: Cache, session: requests.Session, jobs: int,
              quiet: bool, stats: Stats, steps: dict[str, StepStat], client: RegistryClient,
              space: SpaceCheck | None = None) -> list[dict]:
    """RPMs and image blobs in parallel, under one progress display."""
    items = {p["nevra"]: _package_item(m, p) for p in inputs.packages}
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

            refs = _pinned_refs(inputs)
            lock_ = threading.Lock()

            def grow(n: int) -> None:
                if space is not None:
                    space.more_downloads(n)
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


def _pinned_refs(inputs: Inputs) -> list[str]:
    return [f"{r}@{inputs.image_pins[r]}" if r in inputs.image_pins and "@" not in r else r
            for r in inputs.image_refs]


def _package_item(m: Manifest, p: PackageEntry) -> Item:
    return Item(apply_mirrors(p["url"], m.mirrors), p["algo"], p["digest"], p["size"] or None,
                label=f"{p['nevra']} (repo '{p['repo']}')")


def _assemble_and_write(m: Manifest, inputs: Inputs, images: list[dict], lock_used: dict, ws: Workspace,
                        cache: Cache, session: requests.Session, fmt: str, sign_key: str | None, quiet: bool,
                        stats: Stats, client: RegistryClient, space: SpaceCheck,
                        base: Base | None = None) -> tuple[Path, str | None, bool]:
    """Assemble and write, checking every shipped file against bundle.json as it is written; return the bundle,
    for a tarball its sha256 (computed while writing), and whether an unchanged tarball was kept (bundle/reuse.py).

    A file that differs came from a corrupt cache entry (every download is verified on arrival): evict it,
    fetch it again, assemble again (the repodata is computed from the RPMs) and rewrite. A second mismatch
    means something keeps changing the cache under the build: stop, naming the files.
    """
    for attempt in (1, 2):
        try:
            expected, sources = _assemble(m, inputs, images, lock_used, ws.staging, cache)
            omitted: dict[str, str] = {}
            if base is not None:
                from .bundle.delta import omit

                omitted = omit(ws.staging, expected, sources, base, m.bundle_basename)
                expected = {k: v for k, v in expected.items() if k not in omitted}
            return _write_output(m, ws, fmt, sign_key, quiet, expected, space, cache, omitted)
        except DigestMismatch as e:
            if attempt == 2:
                raise BundlerError(
                    f"{_names(e.bad, sources)} still did not match the checksum bundle.json records after the "
                    f"cache entry was removed and fetched again. Something is changing files in the cache "
                    f"({cache.root}) while the build runs, or the disk is failing; nothing was written. Check the "
                    "disk, stop whatever writes to the cache, and run the same command again.") from None
            _heal(m, e.bad, sources, inputs, ws.staging, cache, session, stats, client)
    raise AssertionError("unreachable")


def _names(bad: dict[str, tuple[str, str]], sources: dict[str, tuple[str, object]]) -> str:
    return "; ".join(f"{_label(sources.get(rel))} ({rel}: expected sha256 {exp}, got {act})"
                     for rel, (exp, act) in sorted(bad.items()))


def _label(source: tuple[str, object] | None) -> str:
    if source is None:
        return "a generated file"
    kind, obj = source
    if kind == "package":
        return f"package {cast(PackageEntry, obj)['nevra']}"
    if kind == "file":
        return f"file '{cast(FileRecord, obj).name}'"
    return f"image blob {obj}"


def _heal(m: Manifest, bad: dict[str, tuple[str, str]], sources: dict[str, tuple[str, object]], inputs: Inputs,
          staging: Path, cache: Cache, session: requests.Session, stats: Stats,
          client: RegistryClient) -> None:
    """Evict the corrupt cache entries behind bad staged files and fetch them again (the download verifies)."""
    images = False
    for rel in sorted(bad):
        (staging / rel).unlink(missing_ok=True)
        kind, obj = sources.get(rel, ("generated", None))
        try:
            if kind == "package":
                p = cast(PackageEntry, obj)
                cache.evict(p["algo"], p["digest"])
                inputs.cached[p["nevra"]] = fetch(session, _package_item(m, p), cache, stats=stats)
            elif kind == "file":
                _refetch_file(m, cast(FileRecord, obj), cache, session, stats)
            elif kind == "image":
                cache.evict("sha256", str(obj).split(":", 1)[1])
                images = True
        except OSError as e:
            raise BundlerError(
                f"{_label((kind, obj))}: the copy in the cache ({cache.root}) is corrupt (sha256 {bad[rel][1]}, "
                f"expected {bad[rel][0]}) and could not be replaced ({e.strerror}). Remove it from the shared "
                "cache (or run the build once with a writable cache), then build again.") from None
    if images:
        from .images.pull import ImageOptions, pull_images

        opts = ImageOptions(platforms=[m.target.oci_platform], cache=cache, client=client)
        pull_images(_pinned_refs(inputs), staging / "images", opts, stats=stats)


def _refetch_file(m: Manifest, f: FileRecord, cache: Cache, session: requests.Session, stats: Stats | None) -> None:
    """Evict a file's cache entries (and its archive's) and fetch it again into the same content address."""
    from .files.fetch import _extract

    cache.evict("sha256", f.sha256)
    cache.evict("sha256", f.source_sha256)
    label = f"file '{f.name}'"
    path = fetch(session, Item(apply_mirrors(f.url, m.mirrors), "sha256", f.source_sha256, None, label), cache,
                 stats=stats)
    if f.extract:
        path, digest = _extract(path, f.extract, cache, label)
        if digest != f.sha256:
            raise FetchError(
                f"{label}: member '{f.extract}' of the archive fetched again has sha256 {digest}, but bundle.json "
                f"records {f.sha256}. Run `bundler lock` again if the upstream archive legitimately changed.")


def _checked_text(m: Manifest, f: FileRecord, cache: Cache, session: requests.Session, stats: Stats | None) -> str:
    """A CNI manifest's text for the image list, verified first: a rotten cache entry must not pick the images."""
    data = f.cached.read_bytes()
    if hashlib.sha256(data).hexdigest() != f.sha256:
        _refetch_file(m, f, cache, session, stats)
        data = f.cached.read_bytes()
        if hashlib.sha256(data).hexdigest() != f.sha256:
            raise BundlerError(
                f"file '{f.name}': the cached copy ({f.cached}) still does not match sha256 {f.sha256} after it was "
                "fetched again. Something is changing the cache while the build runs, or the disk is failing.")
    return data.decode("utf-8", errors="replace")


def _assemble(m: Manifest, inputs: Inputs, images: list[dict], lock_used: dict, root: Path,
              cache: Cache) -> tuple[dict[str, str], dict[str, tuple[str, object]]]:
    """Fill the staging tree; return ({relpath: sha256 bundle.json records}, {relpath: where it came from})."""
    repo = root / "repo"
    placed: list[Path] = []
    expected: dict[str, str] = {}
    sources: dict[str, tuple[str, object]] = {}
    sha256: dict[str, str] = {}  # nevra -> sha256 of the RPM (repos with other checksum types need it computed)
    bad: dict[str, tuple[str, str]] = {}
    for p in inputs.packages:
        rel = f"repo/Packages/{p['location'].rsplit('/', 1)[-1]}"
        dest = root / rel
        place(inputs.cached[p["nevra"]], dest)
        placed.append(dest)
        sources[rel] = ("package", p)
        if p["algo"] == "sha256":
            sha256[p["nevra"]] = p["digest"]
        else:  # bundle.json comes first in the tarball, so this sha256 is needed now: check the repo's digest too
            sha256[p["nevra"]], actual = _two_digests(dest, p["algo"])
            if actual != p["digest"]:
                bad[rel] = (p["digest"], actual)
        expected[rel] = sha256[p["nevra"]]
    for f in inputs.files:
        dest = root / f.path
        place(f.cached, dest)
        os.chmod(dest, 0o755 if f.kind == "binary" else 0o644)
        expected[f.path], sources[f.path] = f.sha256, ("file", f)
        if f.kind == "rpm":
            placed.append(dest)
    if bad:
        raise DigestMismatch(bad)
    blobs = root / "images" / "blobs" / "sha256"
    if blobs.is_dir():
        for b in blobs.iterdir():
            rel = f"images/blobs/sha256/{b.name}"
            expected[rel], sources[rel] = b.name, ("image", f"sha256:{b.name}")
    if placed or m.repos:  # an empty repo is still a repo: the hosts' repo files can point at it
        write_repo(repo, placed, modules_yaml=inputs.modules_yaml)
    add_installer(root, m)
    bom = {
        "schemaVersion": 1,
        "builder": {"name": "airgap-bundler", "version": __version__},
        "name": m.name,
        "version": m.version,
        "target": {"os": m.target.os, "arch": m.target.arch},
        "kubernetes": kubernetes_section(m, inputs.kubeadm_images_from, inputs.hops),
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
    from .bundle.tarball import source_epoch
    from .sbom import write_into

    write_into(root, source_epoch())  # SPDX and CycloneDX documents from bundle.json, listed in SHA256SUMS
    return expected, sources


def _two_digests(path: Path, algo: str) -> tuple[str, str]:
    """(sha256, algo digest) of a file in one read."""
    a, b = hashlib.sha256(), hashlib.new(algo)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            a.update(block)
            b.update(block)
    return a.hexdigest(), b.hexdigest()


def _write_output(m: Manifest, ws: Workspace, fmt: str, sign_key: str | None, quiet: bool,
                  expected: dict[str, str], space: SpaceCheck, cache: Cache,
                  omitted: dict[str, str] | None = None) -> tuple[Path, str | None, bool]:
    """Check and write the staging tree: the tarball (streamed, hashed once; its own sha256 returned) or, for
    dir, the tree itself. A tarball that the same tree wrote before is kept once every byte of it checks."""
    from .bundle import reuse
    from .bundle.sums import seal_tree

    base, staging = ws.base, ws.staging
    if fmt == "dir":
        total = space.before_write(staging)
        final = ws.out_dir / base
        with ByteProgress(total, "checking bundle", enabled=not quiet) as bar:
            seal_tree(staging, expected, progress=bar, omitted=omitted)
        if final.exists():
            shutil.rmtree(final)
        os.rename(staging, final)
        return final, None, False
    final = ws.out_dir / f"{base}.{fmt}"
    from .bundle.tarball import DEFAULT_LEVEL, source_epoch, write_tarball

    key = None
    if not sign_key:  # a signature is made anew each time: never reused
        key = reuse.output_key(staging, expected, omitted or {}, fmt=fmt, top=base, epoch=source_epoch(),
                               level=DEFAULT_LEVEL)
        rec = reuse.candidate(cache.root, final, key)
        if rec is not None:
            with ByteProgress(rec["size"], "checking the unchanged bundle", enabled=not quiet) as bar:
                kept = reuse.reusable(cache.root, final, rec, progress=bar)
            if kept is not None:
                return final, kept, True
    total = space.before_write(staging)
    tmp = ws.partial(final)
    sign = None
    if sign_key:
        from .bundle.sign import sign_bytes

        def sign(text: bytes) -> bytes:
            return sign_bytes(text, sign_key)
    try:
        with ByteProgress(total, "writing bundle", enabled=not quiet) as bar:
            written: list[str] = []
            write_tarball(staging, tmp, top=base, fmt=fmt, sign=sign, progress=bar, expected=expected,
                          on_written=written.append, omitted=omitted)
        reuse.forget(cache.root, final)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if key is not None:
        reuse.record(cache.root, final, key, written[0])
    return final, written[0], False
