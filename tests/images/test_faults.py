"""Faults: a tampered blob fails naming image and blob; a flaky upstream (503s, dropped connections) succeeds."""

from __future__ import annotations

import json

import pytest

from bundler.errors import FetchError
from bundler.fetch.cache import Cache
from bundler.images.pull import pull_images

from .helpers import Proxy, digest_of

pytestmark = pytest.mark.usefixtures("no_docker_config")


def test_tampered_blob_fails_naming_image_and_blob(upstream, tmp_path):
    img = upstream.images["app/two:two"]
    own = json.loads(img.top[0])["layers"][-1]["digest"]
    proxy = Proxy(upstream.host, decide=lambda m, p, n: "tamper" if p.endswith(own) else "forward")
    try:
        with pytest.raises(FetchError) as e:
            pull_images([f"{proxy.host}/app/two:two"], tmp_path / "store", platforms=["linux/amd64"],
                        cache=Cache(tmp_path / "cache"), insecure={proxy.host})
    finally:
        proxy.stop()
    msg = str(e.value)
    assert f"image {proxy.host}/app/two:two blob {own}" in msg and "does not match" in msg
    assert not (tmp_path / "store" / "index.json").exists()  # nothing half-done is listed
    assert not (tmp_path / "cache" / "blobs" / "sha256" / own.split(":")[1]).exists()


def test_tampered_manifest_fails(upstream, tmp_path):
    digest = upstream.images["app/one:one"].digest
    proxy = Proxy(upstream.host, decide=lambda m, p, n: "tamper" if "/manifests/" in p else "forward")
    try:
        with pytest.raises(FetchError, match="does not match its digest"):
            pull_images([f"{proxy.host}/app/one@{digest}"], tmp_path / "s", platforms=["linux/amd64"],
                        cache=Cache(tmp_path / "c"), insecure={proxy.host})
    finally:
        proxy.stop()


def test_flaky_upstream_still_succeeds(upstream, tmp_path):
    """Every manifest and blob URL: first a 503, then a connection dropped mid-body, then the real answer."""
    proxy = Proxy(upstream.host, decide=lambda m, p, n: {1: "503", 2: "drop"}.get(n, "forward")
                  if m == "GET" and "/v2/" in p and p != "/v2/" else "forward")
    try:
        recs = pull_images([f"{proxy.host}/app/one:one", f"{proxy.host}/multi/docker:mdocker"], tmp_path / "store",
                           platforms=["linux/arm64", "linux/amd64"], cache=Cache(tmp_path / "cache"),
                           insecure={proxy.host})
    finally:
        proxy.stop()
    assert [r.digest for r in recs] == [upstream.images["app/one:one"].digest,
                                        upstream.images["multi/docker:mdocker"].digest]
    assert any(n >= 3 for (m, p), n in proxy.counts.items() if "/blobs/" in p)
    for path in (tmp_path / "store" / "blobs" / "sha256").iterdir():
        assert digest_of(path.read_bytes()) == f"sha256:{path.name}"
