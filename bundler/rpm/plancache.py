"""The resolved-plan cache: a warm `plan`, `lock` or `build` whose inputs did not change does not run the solver.

A resolve is a pure function of: the validated manifest (everything but what takes no part in it: its name,
version and file, images, files, how registries are reached), each repo's repomd.xml (which pins every metadata
file the solver reads by checksum), and the resolver itself (the builder's version and bundler/rpm's code, the
libsolv installed). An entry is named by the sha256 of all of those, so any change is a miss, never a stale
answer; the repomd.xml of every repo is still fetched each time (one small request per repo, in parallel).

Entries live in CACHE/plans/<key>.json, written atomically (temporary name, rename), so concurrent builds only
ever read whole entries; `cache prune` removes them with the other leftovers when no build runs. An entry that does
not read back (truncated, edited, not ours) is reported, ignored and rewritten; a read-only cache is only read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..fetch.cachefile import code_identity, read_sealed, write_sealed
from .package import Package, SplitByMedia
from .repomd import read_repomds

if TYPE_CHECKING:
    from ..manifest.model import Manifest
    from .repomd import RepoMetadata, RepoReader

FORMAT = 2  # 2: upgrade hops' packages kept with the closure
DIR = "plans"
# Manifest fields that take no part in the package resolve (a change there must not cost a resolve).
NOT_RESOLVE_INPUTS = ("file", "name", "version", "images", "files", "registries")
_FIELDS = [f.name for f in dataclasses.fields(Package)]

log = logging.getLogger(__name__)


@dataclass
class Resolved(SplitByMedia):
    """What the package part of a build needs from a resolve (bundler.rpm.closure.Closure, reduced to data)."""

    packages: list[Package]  # shipped and from the media (on_media), sorted as the solver returns them
    modules_yaml: str | None = None
    host_streams: list[str] = field(default_factory=list)
    used_filelists: bool = False
    warnings: list[str] = field(default_factory=list)
    cached: bool = False  # answered from the plan cache
    hops: dict[str, list[Package]] = field(default_factory=dict)  # upgrade hop -> its kubeadm, kubelet, kubectl


def resolve_cached(manifest: Manifest, reader: RepoReader) -> Resolved:
    """The manifest's package closure: from the plan cache when every input is unchanged, else solved (and kept)."""
    if not manifest.packages:  # closure.requested_packages is empty only then; nothing to check or solve
        return Resolved([])
    metadata = read_repomds(reader, manifest.repos)
    path = reader.cache.root / DIR / f"{plan_key(manifest, metadata)}.json"
    hit = load(path)
    if hit is not None:
        for w in hit.warnings:  # said again, as the solve that found them said them
            log.warning(w)
        return hit
    from .closure import resolve

    closure = resolve(manifest, reader, metadata)
    got = Resolved(closure.packages, closure.modules_yaml(), closure.host_streams(), closure.used_filelists,
                   list(closure.warnings), hops=dict(closure.hops))
    if reader.cache.writable:
        save(path, got)
    return got


def plan_key(manifest: Manifest, metadata: dict[str, RepoMetadata]) -> str:
    """sha256 over everything that decides the answer (see the module docstring)."""
    spec = dataclasses.asdict(manifest)
    for name in NOT_RESOLVE_INPUTS:
        spec.pop(name, None)
    inputs = {"format": FORMAT, "spec": spec, "repomd": {n: md.digest for n, md in metadata.items()},
              "resolver": _resolver_identity()}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


def _resolver_identity() -> str:
    """The builder's version, the source of bundler/rpm and the installed libsolv binding."""
    return code_identity(tuple(sorted(Path(__file__).parent.glob("*.py"))), ("solv",))


def load(path: Path) -> Resolved | None:
    """The entry at path; None when there is none or it does not read back whole (then it is reported)."""
    try:
        body = read_sealed(path, FORMAT)
        if body is None:
            return None
        data = json.loads(body)
        rows = data["packages"]
        if any(len(row) != len(_FIELDS) for row in rows):
            raise ValueError("a package record has the wrong number of fields")
        hop_rows = data["hops"]
        if any(len(row) != len(_FIELDS) for rows_ in hop_rows.values() for row in rows_):
            raise ValueError("a hop package record has the wrong number of fields")
        packages = [Package(*row) for row in rows]
        return Resolved(packages, data["modulesYaml"], list(data["hostStreams"]), bool(data["usedFilelists"]),
                        list(data["warnings"]), cached=True,
                        hops={str(v): [Package(*row) for row in rows_] for v, rows_ in hop_rows.items()})
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        log.warning(f"ignoring the damaged plan cache entry {path} ({e}); resolving again, and it is rewritten.")
        return None


def save(path: Path, r: Resolved) -> None:
    """Write the entry atomically; best effort (a full disk or a concurrent prune only skips it)."""
    body = json.dumps({"packages": [[getattr(p, f) for f in _FIELDS] for p in r.packages],
                       "modulesYaml": r.modules_yaml, "hostStreams": r.host_streams,
                       "usedFilelists": r.used_filelists, "warnings": r.warnings,
                       "hops": {v: [[getattr(p, f) for f in _FIELDS] for p in ps] for v, ps in r.hops.items()}},
                      separators=(",", ":")).encode()
    write_sealed(path, FORMAT, body)
