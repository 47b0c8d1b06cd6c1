"""Pulling into the OCI store: platform selection, whole indexes, digests as skopeo sees them, dedup, mirrors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bundler.errors import FetchError
from bundler.fetch.cache import Cache
from bundler.images.pull import plan_images, pull_images
from bundler.oci.layout import FULL_REF, REF_NAME
from bundler.registry.client import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, RegistryClient

from .helpers import digest_of, skopeo_raw_digest

pytestmark = pytest.mark.usefixtures("no_docker_config")


def _pull(upstream, tmp_path: Path, refs, platforms, **kw):
    store = tmp_path / "store"
    records = pull_images([upstream.ref(r) for r in refs], store, platforms=platforms,
                          cache=Cache(tmp_path / "cache"), insecure={upstream.host}, **kw)
    return store, records


def _index(store: Path) -> dict:
    return json.loads((store / "index.json").read_text())


def _blob(store: Path, digest: str) -> bytes:
    return (store / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()


def _layout_complete(store: Path) -> None:
    """Every blob any stored manifest references is present and matches its digest."""
    todo = [d["digest"] for d in _index(store)["manifests"]]
    while todo:
        data = _blob(store, todo.pop())
        doc = json.loads(data)
        for d in doc.get("manifests", []):
            todo.append(d["digest"])
        for d in [doc.get("config")] + doc.get("layers", []) if "config" in doc else []:
            assert digest_of(_blob(store, d["digest"])) == d["digest"]


@pytest.mark.parametrize("image,child_mt,top_mt", [("multi/oci:moci", OCI_MANIFEST, OCI_INDEX),
                                                     ("multi/docker:mdocker", DOCKER_MANIFEST, DOCKER_LIST)])
@pytest.mark.parametrize("platform,arch", [("linux/amd64", "amd64"), ("linux/arm64", "arm64")])
def test_right_child_per_arch(upstream, tmp_path, image, child_mt, top_mt, platform, arch):
    store, [rec] = _pull(upstream, tmp_path, [image], [platform])
    index = json.loads(_blob_of_ref(upstream, image))
    want = next(d for d in index["manifests"] if d["platform"]["architecture"] == arch)
    assert rec.digest == want["digest"] and rec.media_type == child_mt
    [entry] = _index(store)["manifests"]
    assert entry["digest"] == want["digest"] and entry["mediaType"] == child_mt
    assert entry["annotations"] == {FULL_REF: upstream.ref(image), REF_NAME: upstream.ref(image)}
    manifest = json.loads(_blob(store, rec.digest))
    cfg = json.loads(_blob(store, manifest["config"]["digest"]))
    assert cfg["architecture"] == arch
    assert rec.platforms[0].startswith(f"linux/{arch}")
    # the other architecture's layer is not in the store
    other = next(d for d in index["manifests"] if d["platform"]["architecture"] not in (arch, "unknown"))
    assert not (store / "blobs" / "sha256" / other["digest"].split(":")[1]).exists()
    assert skopeo_raw_digest(f"{upstream.ref(image.split(':')[0])}@{rec.digest}") == rec.digest
    _layout_complete(store)


def _blob_of_ref(upstream, image: str) -> bytes:
    return upstream.images[image].top[0]


@pytest.mark.parametrize("image,top_mt", [("multi/oci:moci", OCI_INDEX), ("multi/docker:mdocker", DOCKER_LIST)])
def test_whole_index_kept_when_several_platforms(upstream, tmp_path, image, top_mt):
    store, [rec] = _pull(upstream, tmp_path, [image], ["linux/amd64", "linux/arm64"])
    assert rec.media_type == top_mt
    assert rec.digest == skopeo_raw_digest(upstream.ref(image))  # the exact index bytes
    assert sorted(p.split("/")[1] for p in rec.platforms) == ["amd64", "arm64"]  # unknown/unknown not listed
    index = json.loads(_blob(store, rec.digest))
    for d in index["manifests"]:  # every child (attestation too) is stored, so the index can be pushed again
        assert digest_of(_blob(store, d["digest"])) == d["digest"]
    _layout_complete(store)


def test_single_manifests_digests_match_skopeo(upstream, tmp_path):
    refs = ["app/one:one", "single/docker:sdocker"]
    store, recs = _pull(upstream, tmp_path, refs, ["linux/amd64"])
    for ref, rec in zip(refs, recs):
        assert rec.digest == skopeo_raw_digest(upstream.ref(ref))
        assert rec.platforms == ("linux/amd64",)
    assert recs[1].media_type == DOCKER_MANIFEST  # never converted
    assert digest_of(_blob(store, recs[1].digest)) == recs[1].digest


def test_wrong_arch_single_image_is_refused(upstream, tmp_path):
    with pytest.raises(FetchError, match=r"app/one:one: is a single-platform image for linux/amd64"):
        _pull(upstream, tmp_path, ["app/one:one"], ["linux/arm64"])


def test_shared_layers_stored_once_and_downloaded_once(upstream, tmp_path):
    from bundler.fetch.download import Stats

    stats = Stats()
    progress: list[int] = []
    totals: list[int] = []
    store, (one, two) = _pull(upstream, tmp_path, ["app/one:one", "app/two:two"], ["linux/amd64"], stats=stats,
                              progress=progress.append, on_total=totals.append)
    l1 = json.loads(_blob(store, one.digest))["layers"]
    l2 = json.loads(_blob(store, two.digest))["layers"]
    shared = {d["digest"] for d in l1} & {d["digest"] for d in l2}
    assert len(shared) == 2
    blobs = sorted(p.name for p in (store / "blobs" / "sha256").iterdir())
    assert len(blobs) == len(set(blobs)) == 2 + 2 + 2 + 2  # 2 manifests, 2 configs, 2 shared + 2 own layers
    assert stats.downloaded == 4  # layers only (configs came during resolution), shared ones once
    blob_bytes = sum(d["size"] for d in l1) + sum(d["size"] for d in l2 if d["digest"] not in shared)
    blob_bytes += sum(json.loads(_blob(store, r.digest))["config"]["size"] for r in (one, two))
    assert totals == [blob_bytes] and sum(progress) == blob_bytes  # progress reaches the announced total
    # shared blobs are hard links into the cache, not copies
    cache_file = tmp_path / "cache" / "blobs" / "sha256" / next(iter(shared)).split(":")[1]
    assert cache_file.stat().st_ino == (store / "blobs" / "sha256" / cache_file.name).stat().st_ino
    # a second pull into the same store adds nothing and keeps index.json byte-identical and sorted
    before = (store / "index.json").read_bytes()
    _pull(upstream, tmp_path, ["app/two:two", "app/one:one"], ["linux/amd64"])
    assert (store / "index.json").read_bytes() == before
    refs = [d["annotations"][FULL_REF] for d in _index(store)["manifests"]]
    assert refs == sorted(refs)


def test_mirror_stores_under_original_name(upstream, tmp_path):
    store = tmp_path / "store"
    [rec] = pull_images(["registry.k8s.io/pause:3.9"], store, platforms=["linux/amd64"],
                        cache=Cache(tmp_path / "cache"), mirrors={"registry.k8s.io": f"http://{upstream.host}"})
    assert rec.ref == "registry.k8s.io/pause:3.9"
    assert rec.digest == upstream.images["pause:3.9"].digest
    [entry] = _index(store)["manifests"]
    assert entry["annotations"] == {FULL_REF: "registry.k8s.io/pause:3.9", REF_NAME: "registry.k8s.io/pause:3.9"}


def test_mirror_with_path_prefix(upstream, tmp_path):
    """`registry.k8s.io: HOST/app` style (like registry.aliyuncs.com/google_containers): prefix + repository."""
    client = RegistryClient(mirrors={"example.test": f"{upstream.host}/app"}, insecure={upstream.host})
    [rec] = pull_images(["example.test/one:one"], tmp_path / "s", platforms=["linux/amd64"],
                        cache=Cache(tmp_path / "c"), client=client)
    assert rec.ref == "example.test/one:one" and rec.digest == upstream.images["app/one:one"].digest


def test_mirror_entry_for_one_repository(upstream, tmp_path):
    """A mirror that lays one image out differently (registry.aliyuncs.com/google_containers keeps CoreDNS flat):
    a `host/repository` key beats the host key for that image only, and names stay the upstream ones."""
    mirrors = {"example.test": f"{upstream.host}/app", "example.test/coredns/coredns": f"{upstream.host}/app/one"}
    client = RegistryClient(mirrors=mirrors, insecure={upstream.host})
    recs = pull_images(["example.test/coredns/coredns:one", "example.test/two:two"], tmp_path / "s",
                       platforms=["linux/amd64"], cache=Cache(tmp_path / "c"), client=client)
    got = {r.ref: r.digest for r in recs}
    assert got == {"example.test/coredns/coredns:one": upstream.images["app/one:one"].digest,
                   "example.test/two:two": upstream.images["app/two:two"].digest}


def test_plan_resolves_without_layers(upstream, tmp_path):
    cache = Cache(tmp_path / "cache")
    recs = plan_images([upstream.ref("multi/oci:moci")], platforms=["linux/arm64"], cache=cache,
                       insecure={upstream.host})
    oci = json.loads(_blob_of_ref(upstream, "multi/oci:moci"))
    arm = next(d for d in oci["manifests"] if d["platform"]["architecture"] == "arm64")
    assert recs[0].digest == arm["digest"] and recs[0].size > 11_000
    assert recs[0].to_dict()["platforms"] == ["linux/arm64"]
    assert cache.size()[1] < 2_000  # only the config: no layer was downloaded
    with pytest.raises(FetchError, match="single-platform"):
        plan_images([upstream.ref("app/one:one")], platforms=["linux/arm64"], cache=cache, insecure={upstream.host})


def test_unknown_image_is_a_clear_error(upstream, tmp_path):
    with pytest.raises(FetchError, match=r"image .*/app/nothere:1: manifest 1 not found"):
        _pull(upstream, tmp_path, ["app/nothere:1"], ["linux/amd64"])
