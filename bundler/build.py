"""`bundler plan` and `bundler build`: the pipeline from a manifest to a bundle directory.

The bundle is assembled in a staging directory next to the output (hard links into the cache, so no
payload is copied) and renamed into place only when complete: a failed or interrupted build never leaves a
partial bundle where the operator expects one.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

from . import __version__
from .fetch.cache import Cache
from .fetch.download import Item, Stats, fetch_all
from .fetch.http import make_session
from .manifest.model import Manifest
from .progress import ByteProgress
from .rpm.closure import Closure, resolve
from .rpm.modules import render_modules_yaml
from .rpm.repo_writer import place, write_repo
from .rpm.repomd import RepoReader


@dataclass
class BuildResult:
    path: Path
    closure: Closure
    stats: Stats
    seconds: dict[str, float] = field(default_factory=dict)


def resolve_packages(manifest: Manifest, cache: Cache, session=None) -> Closure:  # noqa: ANN001
    session = session or make_session()
    return resolve(manifest, RepoReader(session, cache, manifest.mirrors))


def plan_json(manifest: Manifest, closure: Closure) -> dict:
    """What a build would fetch, without downloading any payload."""
    shipped = closure.shipped
    return {
        "bundle": manifest.bundle_basename,
        "target": {"os": manifest.target.os, "arch": manifest.target.arch},
        "prefer": manifest.prefer,
        "packages": [p.to_json() for p in shipped],
        "fromMedia": [p.to_json() for p in closure.from_media],
        "totals": {"packages": len(shipped), "bytes": sum(p.size for p in shipped)},
    }


def rpm_items(closure: Closure) -> dict[str, Item]:
    """NEVRA -> download item for every shipped package."""
    items = {}
    for p in closure.shipped:
        md = closure.metadata[p.repo]
        items[p.nevra] = Item(urljoin(md.url, p.location), p.algo, p.digest, p.size or None,
                              label=f"{p.nevra} (repo '{p.repo}')")
    return items


def build(manifest: Manifest, out_dir: Path, cache: Cache, *, jobs: int = 8, quiet: bool = False) -> BuildResult:
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    session = make_session(pool=max(jobs, 4))
    closure = resolve_packages(manifest, cache, session)
    timings["resolve"] = time.monotonic() - t0

    items = rpm_items(closure)
    stats = Stats()
    t1 = time.monotonic()
    total = sum(i.size or 0 for i in items.values())
    with ByteProgress(total, "packages", enabled=not quiet) as bar:
        paths = fetch_all(session, items.values(), cache, workers=jobs, progress=bar, stats=stats)
    timings["download"] = time.monotonic() - t1

    t2 = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / manifest.bundle_basename
    staging = out_dir / f".{manifest.bundle_basename}.partial-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    try:
        staging.mkdir()
        _assemble(manifest, closure, items, paths, staging)
        _swap_into_place(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    timings["assemble"] = time.monotonic() - t2
    return BuildResult(final, closure, stats, timings)


def _assemble(manifest: Manifest, closure: Closure, items: dict[str, Item], paths: dict[Item, Path],
              root: Path) -> None:
    repo = root / "repo"
    placed = []
    for p in closure.shipped:
        dest = repo / "Packages" / p.filename
        place(paths[items[p.nevra]], dest)
        placed.append(dest)
    if placed:
        shipped_keys = {p.nevra for p in closure.shipped}
        write_repo(repo, placed, modules_yaml=render_modules_yaml(closure.modules, shipped_keys))
    bom = {
        "schemaVersion": 1,
        "builder": {"name": "airgap-bundler", "version": __version__},
        "name": manifest.name,
        "version": manifest.version,
        "target": {"os": manifest.target.os, "arch": manifest.target.arch},
        "kubernetes": {"version": manifest.kubernetes_version} if manifest.kubernetes_version else None,
        "runtime": manifest.runtime,
        "cni": manifest.cni,
        "install": manifest.install,
        "packages": [
            {**p.to_json(), "path": f"repo/Packages/{p.filename}", "source": items[p.nevra].url}
            for p in closure.shipped
        ],
        "media": [{"name": r.name, "baseurl": r.baseurl} for r in manifest.media_repos],
    }
    (root / "bundle.json").write_text(json.dumps(bom, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _swap_into_place(staging: Path, final: Path) -> None:
    """Replace final with staging; the old bundle is removed only after the new one is in place."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.rename(final, old)
    os.rename(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
