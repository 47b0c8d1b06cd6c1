"""libsolv's .solv cache of parsed repo metadata (bundler.rpm.solvcache), against the real test repos over HTTP:
a warm resolve parses no XML and gives the very same closure; a damaged .solv or an unwritable cache falls back
to the XML."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bundler.build import resolve_packages
from bundler.fetch.cache import Cache
from bundler.manifest import load_manifest
from bundler.rpm import solver as solver_mod
from tests.builder.test_rpm_engine import K8S, manifest


@pytest.fixture
def xml_loads(monkeypatch):
    """How many metadata XML files the solver parses."""
    calls: list[str] = []
    real = solver_mod.Solver._load

    def counting(repo, path, language):  # noqa: ANN001, ANN202
        calls.append(Path(path).name)
        return real(repo, path, language)

    monkeypatch.setattr(solver_mod.Solver, "_load", staticmethod(counting))
    return calls


def resolve(tmp_path: Path, yum_repos, cache: Cache):  # noqa: ANN001, ANN201
    return resolve_packages(load_manifest(manifest(tmp_path, yum_repos.urls("media", "extras"), K8S)), cache)


def test_warm_resolve_reads_solv_files_and_gives_the_same_closure(tmp_path, yum_repos, xml_loads):
    cache = Cache(tmp_path / "cache")
    cold = resolve(tmp_path, yum_repos, cache)
    assert cold.used_filelists and len(xml_loads) == 6  # primary of 2 repos, then primary + filelists again
    solvs = sorted(p.name for p in (cache.root / "unpacked").glob("*.solv"))
    assert len(solvs) == 4 and sum("+" in n for n in solvs) == 2  # primary alone, primary+filelists; per repo
    xml_loads.clear()
    warm = resolve(tmp_path, yum_repos, cache)
    assert xml_loads == []
    assert warm.packages == cold.packages  # NEVRA, location, checksum, size, license, repo: all from the .solv


def test_damaged_or_unwritable_solv_falls_back_to_the_xml(tmp_path, yum_repos, xml_loads):
    cache = Cache(tmp_path / "cache")
    cold = resolve(tmp_path, yum_repos, cache)
    solvs = sorted((cache.root / "unpacked").glob("*.solv"))
    solvs[0].write_bytes(b"not a solv file")  # damaged
    for p in solvs[1:]:  # unwritable: the name is taken by a directory (root ignores permission bits)
        p.unlink()
        p.mkdir()
    xml_loads.clear()
    again = resolve(tmp_path, yum_repos, cache)
    assert again.packages == cold.packages and len(xml_loads) == 6
    assert all(p.is_dir() for p in solvs[1:]) and not list((cache.root / "unpacked").glob(".*.tmp*"))


def test_warm_arch_filter_comes_from_the_index_beside_the_solv(tmp_path, yum_repos, monkeypatch):
    """A warm resolve keeps foreign arches (media's libpair.i686) out without a Python pass over the pool, and a
    gzip'd primary is parsed as it is downloaded (no decompressed copy on disk)."""
    cache = Cache(tmp_path / "cache")

    def run(packages: list[str]):  # noqa: ANN202
        return resolve_packages(load_manifest(manifest(tmp_path, yum_repos.urls("media", "extras"), packages)), cache)

    cold = run(["pairuser", "libpair"])
    unpacked = cache.root / "unpacked"
    primary_solvs = [p for p in unpacked.glob("*.solv") if "+" not in p.name]
    assert len(primary_solvs) == 2 and all(p.with_name(p.name + ".arches").is_file() for p in primary_solvs)
    assert not any(p.with_suffix(".xml").exists() for p in primary_solvs)

    def no_pass(*args):  # noqa: ANN002, ANN202
        raise AssertionError("warm resolve walked every solvable")

    monkeypatch.setattr(solver_mod.Solver, "_visible_by_pass", no_pass)
    warm = run(["pairuser", "libpair"])
    assert warm.packages == cold.packages and {p.arch for p in warm.packages if p.name == "libpair"} == {"x86_64"}
    with pytest.raises(solver_mod.ResolveError, match="built for i686, not x86_64"):
        run(["libpair.i686"])


def test_a_read_only_cache_decompresses_into_the_scratch_dir(tmp_path, yum_repos):
    """A warm read-only cache without the decompressed XML (or its .solv): this resolve writes them to its scratch
    dir outside the cache, gives the same closure, and the scratch dir goes with close_scratch."""
    from tests.builder.test_write_integrity import _snapshot, tmpfs

    with tmpfs(tmp_path / "shared", "32m") as shared:
        cache = Cache(shared / "cache")
        cold = resolve(tmp_path, yum_repos, cache)
        for p in (cache.root / "unpacked").iterdir():
            p.unlink()
        before = _snapshot(shared)
        if subprocess.run(["mount", "-o", "remount,ro", str(shared)], capture_output=True).returncode != 0:
            pytest.skip("cannot remount read-only")
        try:
            ro = Cache(shared / "cache")
            ro.scratch_in(tmp_path / "scratch")
            assert not ro.writable
            again = resolve(tmp_path, yum_repos, ro)
            assert again.packages == cold.packages
            assert any(p.suffix == ".xml" for p in (tmp_path / "scratch").iterdir())
            ro.close_scratch()
            assert not (tmp_path / "scratch").exists()
            assert _snapshot(shared) == before
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(shared)], capture_output=True)
