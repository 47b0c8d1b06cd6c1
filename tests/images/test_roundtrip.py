"""The store round-trips: pushed into a fresh registry, every image keeps its upstream digest."""

from __future__ import annotations

import subprocess

import pytest

from bundler.fetch.cache import Cache
from bundler.images.pull import pull_images
from bundler.oci.push import push_layout

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


def test_push_keeps_upstream_digests(upstream, store, fresh_registry):
    path, recs = store
    pushed = push_layout(path, f"http://{fresh_registry.host}")
    assert set(pushed) == {upstream.ref(r) for r in ALL}
    for name, rec in zip(ALL, recs):
        assert pushed[rec.ref] == rec.digest == skopeo_raw_digest(upstream.ref(name))
        assert skopeo_raw_digest(f"{fresh_registry.host}/{name}") == rec.digest
    # pushing again is a no-op on blobs (HEAD finds them) and still yields the same digests
    assert push_layout(path, fresh_registry.host, insecure={fresh_registry.host}) == pushed


def test_skopeo_reads_oci_entries_from_the_store(upstream, store, fresh_registry):
    path, recs = store
    for name in ["app/one:one", "multi/oci:moci", "pause:3.9"]:  # OCI media types (skopeo 1.9 reads only those)
        # found by the full reference (ref.name), as the store names it
        subprocess.run(["skopeo", "copy", "--all", "--dest-tls-verify=false", f"oci:{path}:{upstream.ref(name)}",
                        f"docker://{fresh_registry.host}/{name}"], check=True, capture_output=True, timeout=120)
        assert skopeo_raw_digest(f"{fresh_registry.host}/{name}") == skopeo_raw_digest(upstream.ref(name))
