"""registry_layout against the real registry (Debian's docker-registry): a storage laid out from a store that
bundler pulled serves exactly what the HTTP push (registry_push) gives, file for file."""

import json
import os
import shutil
import subprocess
import tempfile

import pytest
import requests

from installer.errors import InstallerError
from installer.registry_layout import lay_out
from installer.registry_push import Layout, Pusher
from installer.registry_push import Registry as PushClient
from tests.images.helpers import Registry, digest_of, layer, multi, put_image, single

pytestmark = pytest.mark.skipif(not (shutil.which("docker-registry") and shutil.which("skopeo")),
                                reason="docker-registry and skopeo are needed")

V2 = os.path.join("docker", "registry", "v2")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store built by bundler's own pull (through mirrors, so references keep their real hosts): single-arch
    images sharing layers, a Docker manifest list, an OCI index with an attestation, and a digest reference."""
    from bundler.fetch.cache import Cache
    from bundler.images.pull import pull_images

    work = tmp_path_factory.mktemp("layout-upstream")
    up = Registry(work)
    try:
        base1, base2 = layer(30_000, "base-1"), layer(20_000, "base-2")
        images = {
            "k8s/kube-proxy:v1.30.4": single([base1, base2, layer(15_000, "proxy")], label="proxy"),
            "k8s/kube-apiserver:v1.30.4": single([base1, base2, layer(16_000, "api")], label="api"),
            "k8s/pause:3.9": single([layer(3_000, "pause")], label="pause"),
            "hub/calico/node:v3.28.0": multi(
                [(single([base1, layer(9_000, "node-amd64")], "amd64", docker=True),
                  {"architecture": "amd64", "os": "linux"}),
                 (single([base1, layer(9_000, "node-arm64")], "arm64", "v8", docker=True),
                  {"architecture": "arm64", "os": "linux", "variant": "v8"})], docker=True),
            "hub/library/busybox:1.36": multi(
                [(single([layer(8_000, "bb-amd64")], "amd64"), {"architecture": "amd64", "os": "linux"}),
                 (single([layer(8_000, "bb-arm64")], "arm64"), {"architecture": "arm64", "os": "linux"})],
                attestation=True),
            "k8s/etcd:3.5.15-0": single([base2, layer(7_000, "etcd")], label="etcd"),
        }
        for name, img in images.items():
            repo, tag = name.rsplit(":", 1)
            put_image(up.host, repo, tag, img)
        etcd = images["k8s/etcd:3.5.15-0"].digest
        refs = ["registry.k8s.io/kube-proxy:v1.30.4", "registry.k8s.io/kube-apiserver:v1.30.4",
                "registry.k8s.io/pause:3.9", "docker.io/calico/node:v3.28.0", "busybox:1.36",
                "registry.k8s.io/etcd@" + etcd]
        path = work / "store"
        pull_images(refs, path, platforms=["linux/amd64", "linux/arm64"], cache=Cache(work / "cache"),
                    mirrors={"registry.k8s.io": "http://%s/k8s" % up.host, "docker.io": "http://%s/hub" % up.host})
    finally:
        up.stop()
    return str(path)


def tree(root):
    """{relative path: bytes of link files / digest of data files} under the storage's v2 directory."""
    out = {}
    base = os.path.join(root, V2)
    for d, dirs, files in os.walk(base):
        dirs[:] = [x for x in dirs if x != "_uploads"]  # upload scratch space of the HTTP push
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                data = fh.read()
            out[os.path.relpath(p, base)] = digest_of(data) if f == "data" else data
    return out


def api_view(host):
    """Catalog, tags and the manifest digest of every tag, as the registry serves them."""
    s = requests.Session()
    accept = ",".join(["application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
                       "application/vnd.docker.distribution.manifest.list.v2+json",
                       "application/vnd.docker.distribution.manifest.v2+json"])
    repos = s.get("http://%s/v2/_catalog" % host, timeout=10).json()["repositories"]
    view = {}
    for repo in repos:
        tags = s.get("http://%s/v2/%s/tags/list" % (host, repo), timeout=10).json().get("tags") or []
        for tag in tags:
            r = s.get("http://%s/v2/%s/manifests/%s" % (host, repo, tag), headers={"Accept": accept}, timeout=10)
            assert r.status_code == 200, (repo, tag, r.text)
            view["%s:%s" % (repo, tag)] = (r.headers["Docker-Content-Digest"], digest_of(r.content))
        view.setdefault(repo, None)
    return view


def skopeo_raw_digest(host, name):
    out = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", "docker://%s/%s" % (host, name)],
                         capture_output=True, check=True, timeout=60).stdout
    return digest_of(out)


def test_layout_serves_what_the_http_push_gives(store, tmp_path):
    pushed = Registry(tmp_path / "pushed")
    try:
        Pusher(PushClient("http://%s" % pushed.host), Layout(store)).push_all(docker_bare=True)
        pushed_view = api_view(pushed.host)
    finally:
        pushed.stop()

    root = str(tmp_path / "laid-out")
    st = lay_out(Layout(store), root, docker_bare=True)
    assert st.stats["blobs_copied"] == 0 and st.stats["blobs_linked"] > 0  # same filesystem: hard links
    assert tree(root) == tree(str(pushed.storage))  # the same files with the same content

    # every blob is the bundle's own inode
    layout = Layout(store)
    for d in st.done_blobs:
        assert os.path.samefile(st.blob_data(d), layout.blob_path(d))

    laid = Registry(tmp_path / "serve", storage=root)
    try:
        view = api_view(laid.host)
        assert view == pushed_view
        for name in ["registry.k8s.io/pause:3.9", "docker.io/calico/node:v3.28.0", "library/busybox:1.36"]:
            assert "%s:%s" % tuple(name.rsplit(":", 1)) in view
        assert "docker.io/library/busybox:1.36" in view and "calico/node:v3.28.0" in view  # docker's bare names
        index = {d["annotations"]["io.airgap-bundler.image.ref"]: d["digest"] for d in layout.index["manifests"]}
        assert skopeo_raw_digest(laid.host, "docker.io/calico/node:v3.28.0") == index["docker.io/calico/node:v3.28.0"]
        etcd_ref = [r for r in index if "@" in r][0]
        assert skopeo_raw_digest(laid.host, "registry.k8s.io/etcd@" + index[etcd_ref]) == index[etcd_ref]
        # blobs are served: skopeo pulls a multi-arch image (every child) and a single-arch one out
        for name, extra in [("docker.io/library/busybox:1.36", ["--all"]), ("registry.k8s.io/kube-proxy:v1.30.4", [])]:
            subprocess.run(["skopeo", "copy", "--src-tls-verify=false"] + extra +
                           ["docker://%s/%s" % (laid.host, name), "dir:%s" % (tmp_path / name.replace("/", "_"))],
                           check=True, capture_output=True, timeout=120)
    finally:
        laid.stop()

    # idempotent: a second run writes nothing
    before = {p: os.stat(os.path.join(root, V2, p)).st_mtime_ns for p in tree(root)}
    again = lay_out(Layout(store), root, docker_bare=True)
    assert again.stats["changed"] == 0 and again.stats["links_written"] == 0
    assert again.stats["blobs_linked"] == again.stats["blobs_copied"] == 0
    assert {p: os.stat(os.path.join(root, V2, p)).st_mtime_ns for p in tree(root)} == before


def test_copy_across_filesystems_checks_each_blob(store, tmp_path):
    """A storage on another filesystem (tmpfs) gets verified copies; a damaged blob leaves nothing behind."""
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    if base is None or os.stat(base).st_dev == os.stat(store).st_dev:
        pytest.skip("no second filesystem to copy across")
    shm = tempfile.mkdtemp(prefix="airgap-layout-", dir=base)
    try:
        st = lay_out(Layout(store), os.path.join(shm, "storage"))
        assert st.stats["blobs_linked"] == 0 and st.stats["blobs_copied"] == len(st.done_blobs)
        assert tree(os.path.join(shm, "storage")) == tree_of_layout_run(store, str(tmp_path / "linked"))

        damaged = str(tmp_path / "damaged")
        shutil.copytree(store, damaged)
        layout = Layout(damaged)
        desc = [d for d in layout.index["manifests"] if "pause" in d["annotations"]["io.airgap-bundler.image.ref"]][0]
        manifest = json.loads(layout.read_blob(desc["digest"]).decode())
        victim = layout.blob_path(manifest["layers"][0]["digest"])
        with open(victim, "r+b") as f:
            b = f.read(1)
            f.seek(0)
            f.write(bytes([b[0] ^ 0xFF]))
        target = os.path.join(shm, "storage2")
        with pytest.raises(InstallerError, match="does not match its digest.*The bundle is damaged"):
            lay_out(layout, target, link=False)
        leftovers = [f for _, _, fs in os.walk(target) for f in fs]
        hexd = manifest["layers"][0]["digest"][7:]
        assert not os.path.exists(os.path.join(target, V2, "blobs", "sha256", hexd[:2], hexd, "data"))
        assert not [f for f in leftovers if f.endswith(".airgap-tmp")]
    finally:
        shutil.rmtree(shm)


def tree_of_layout_run(store, root):
    lay_out(Layout(store), root)
    return tree(root)


def test_registry_phase_lays_out_a_local_storage(store, tmp_path, monkeypatch):
    """The phase fills the registry of the serving host (local) by layout, records it in the journal, writes
    nothing the second time; a connection that is not local gets the HTTP push instead."""
    from installer.bundle import Bundle
    from installer.journal import Journal
    from installer.phases import registry as phase
    from installer.render.registry import STORAGE
    from installer.ssh import Local
    from tests.installer.conftest import make_bundle, make_ctx

    bundle_dir = tmp_path / "bundle"
    make_bundle(str(bundle_dir), runtime="docker")
    os.rmdir(str(bundle_dir / "images"))
    shutil.copytree(store, str(bundle_dir / "images"))
    ctx = make_ctx(Bundle.load(str(bundle_dir)))
    conn = Local(root=str(tmp_path / "host"))
    journal = Journal(conn)
    plan = phase.RegistryPhase().plan(ctx, ctx.first_cp, ctx.facts[ctx.first_cp.label])
    fill = [c for c in plan if c.describe().startswith("push ")][0]
    assert fill.apply(conn, journal) is True
    assert journal.data["pushed"] == ctx.bundle_id and journal.data["push_stats"]["blobs_linked"] > 0
    storage = conn.path(STORAGE)
    repos = os.path.join(storage, V2, "repositories")
    assert os.path.isfile(os.path.join(repos, "registry.k8s.io", "pause", "_manifests", "tags", "3.9", "current",
                                       "link"))
    assert os.path.isdir(os.path.join(repos, "calico", "node"))  # docker runtime: bare docker.io names too
    assert phase.fill_registry(ctx, conn, journal) is False

    calls = []
    monkeypatch.setattr(phase, "push_images", lambda *a: calls.append(a) or True)

    class Remote:  # any connection that is not Local: the storage is not on this machine
        is_local = False

    assert phase.fill_registry(ctx, Remote(), journal) is True and len(calls) == 1


def test_invalid_names_are_refused(store, tmp_path):
    """A reference that is no valid repository/tag (here one climbing out of the storage) stops the layout with
    a clear error, as the HTTP API would refuse it."""
    bad = str(tmp_path / "bad-store")
    shutil.copytree(store, bad)
    with open(os.path.join(bad, "index.json")) as f:
        index = json.load(f)
    index["manifests"] = index["manifests"][:1]
    index["manifests"][0]["annotations"] = {"org.opencontainers.image.ref.name": "registry.k8s.io/../../../x:1"}
    with open(os.path.join(bad, "index.json"), "w") as f:
        json.dump(index, f)
    with pytest.raises(InstallerError, match="not a valid registry repository"):
        lay_out(Layout(bad), str(tmp_path / "root" / "storage"))
    assert not os.path.exists(str(tmp_path / "root"))
