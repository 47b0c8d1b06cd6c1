"""The store round-trips: pushed into a fresh registry, every image keeps its upstream digest."""

from __future__ import annotations

import subprocess

import pytest

from bundler.fetch.cache import Cache
from bundler.images.pull import pull_images
from bundler.registry.client import RegistryClient
from installer.registry_push import Layout, Pusher, Registry

from .helpers import skopeo_raw_digest

pytestmark = pytest.mark.usefixtures("no_docker_config")
ALL = ["app/one:one", "app/two:two", "multi/oci:moci", "multi/docker:mdocker", "single/docker:sdocker", "pause:3.9"]


@pytest.fixture(scope="module")
def store(upstream, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rt")
    path = tmp / "store"
    # several platforms: multi-arch images keep their whole index (exact bytes)
    recs = pull_images([upstream.ref(r) for r in ALL], path, platforms=["linux/amd64", "linux/arm64"],
                       cache=Cache(tmp / "cache"), insecure={upstream.host})
    return path, recs


@pytest.fixture(scope="module")
def named_store(upstream, tmp_path_factory):
    """The same images under a port-less registry name (a mirror maps it to the test upstream): the installer
    pushes to <original host>/<repository>, and a repository name cannot hold the upstream's `host:port`."""
    tmp = tmp_path_factory.mktemp("rt-named")
    path = tmp / "store"
    client = RegistryClient(mirrors={"example.test": upstream.host}, insecure={upstream.host})
    recs = pull_images([f"example.test/{r}" for r in ALL], path, platforms=["linux/amd64", "linux/arm64"],
                       cache=Cache(tmp / "cache"), client=client)
    return path, recs


def push(store, registry_host: str) -> int:
    """The installer's pusher (the one that runs on the target): manifests changed in the registry."""
    return Pusher(Registry(f"http://{registry_host}"), Layout(str(store))).push_all()


def test_push_keeps_upstream_digests(upstream, named_store, fresh_registry):
    path, recs = named_store
    assert push(path, fresh_registry.host) >= len(ALL)
    assert {rec.ref for rec in recs} == {f"example.test/{r}" for r in ALL}
    for name, rec in zip(ALL, recs):
        assert rec.digest == skopeo_raw_digest(upstream.ref(name))
        assert skopeo_raw_digest(f"{fresh_registry.host}/example.test/{name}") == rec.digest
    # pushing again changes nothing (HEAD finds every blob, every manifest already has its digest)
    assert push(path, fresh_registry.host) == 0


def test_skopeo_reads_oci_entries_from_the_store(upstream, store, fresh_registry):
    path, recs = store
    for name in ["app/one:one", "multi/oci:moci", "pause:3.9"]:  # OCI media types (skopeo 1.9 reads only those)
        # found by the full reference (ref.name), as the store names it
        subprocess.run(["skopeo", "copy", "--all", "--dest-tls-verify=false", f"oci:{path}:{upstream.ref(name)}",
                        f"docker://{fresh_registry.host}/{name}"], check=True, capture_output=True, timeout=120)
        assert skopeo_raw_digest(f"{fresh_registry.host}/{name}") == skopeo_raw_digest(upstream.ref(name))
