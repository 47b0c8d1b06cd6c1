"""Whole bundles from the stand-in upstream (yum repos, docker-registry, download site) on loopback."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bundler.build import build, lock
from bundler.errors import FetchError, ManifestError
from bundler.fetch.cache import Cache
from bundler.manifest import load_manifest
from tests.upstream.stack import k8s_images

K8S = ["kubeadm-1.30.4", "kubelet-1.30.4", "kubectl-1.30.4", "containerd.io"]
TOP = "stack-1.0-el9-x86_64"


def write_manifest(tmp_path: Path, text: str, name: str = "stack.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_tarball_unpacks_with_plain_tar_and_has_the_layout(tmp_path, stack):
    m = load_manifest(write_manifest(tmp_path, stack.manifest(packages=K8S)))
    result = build(m, tmp_path / "out", Cache(tmp_path / "cache"), quiet=True)
    assert result.path == tmp_path / "out" / f"{TOP}.tar.gz"
    subprocess.run(["tar", "-xzf", str(result.path), "-C", str(tmp_path)], check=True)
    top = tmp_path / TOP
    for rel in ("install.py", "installer/cli.py", "repo/repodata/repomd.xml", "images/oci-layout",
                "images/index.json", "files/registry", "files/helm", "manifests/calico.yaml", "bundle.json",
                "SHA256SUMS", "INSTALL.md", "installer/ansible/site.yml", "installer/ansible/README.md"):
        assert (top / rel).is_file(), rel
    assert (top / "install.py").stat().st_mode & 0o111 and (top / "files/registry").stat().st_mode & 0o111
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(TOP)] == [TOP]  # one top-level directory
    check = subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=top, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    listed = {line.split("  ", 1)[1] for line in (top / "SHA256SUMS").read_text().splitlines()}
    present = {p.relative_to(top).as_posix() for p in top.rglob("*") if p.is_file()} - {"SHA256SUMS"}
    assert listed == present

    bom = json.loads((top / "bundle.json").read_text())
    assert bom["kubernetes"] == {"version": "1.30.4", "imagesFrom": "the shipped kubeadm",  # a TEST DOUBLE, asked
                                 "upgradeFrom": "1.29", "hops": []}
    assert bom["target"] == {"os": "el9", "arch": "x86_64"}
    assert {i["ref"]: i["digest"] for i in bom["images"]} == {r: stack.images[r] for r in k8s_images("1.30.4",
                                                                                                      "calico")}
    assert {p["name"] for p in bom["packages"]} >= {"kubeadm", "kubelet", "kubectl", "containerd.io"}
    assert {f["name"]: f["pinnedBy"] for f in bom["files"]} == {"registry": "publisher", "helm": "publisher",
                                                                  "calico.yaml": "first-fetch"}
    assert bom["files"][0]["sha256"] == sha256(top / bom["files"][0]["path"])
    assert bom["lock"]["manifest"]["sha256"]
    index = json.loads((top / "images" / "index.json").read_text())
    refs = {d["annotations"]["io.airgap-bundler.image.ref"] for d in index["manifests"]}
    assert refs == set(k8s_images("1.30.4", "calico"))
    # ref.name is the full reference, so images sharing a tag (calico's) stay apart and skopeo finds them by name
    assert [d["annotations"]["org.opencontainers.image.ref.name"] for d in index["manifests"]] == sorted(refs)
    for ref in ("registry.k8s.io/pause:3.9", next(r for r in refs if "calico/node" in r)):
        r = subprocess.run(["skopeo", "inspect", "--raw", f"oci:{top / 'images'}:{ref}"], capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stderr
        assert "sha256:" + hashlib.sha256(r.stdout.encode()).hexdigest() == stack.images[ref]


def test_locked_builds_are_byte_identical_and_a_warm_cache_fetches_no_payload(tmp_path, stack):
    path = write_manifest(tmp_path, stack.manifest(packages=K8S, cni="flannel"))
    m = load_manifest(path)
    cache = Cache(tmp_path / "cache")
    lock_file, data = lock(m, cache)
    assert lock_file == tmp_path / "stack.yaml.lock"
    assert len(data["images"]) == len(k8s_images("1.30.4", "flannel"))
    first = build(m, tmp_path / "a", cache, quiet=True, locked=True)
    stack.site.server.reset()
    stack.proxy.seen.clear()
    yum_before = len(stack.yum.log)
    second = build(m, tmp_path / "b", cache, quiet=True, locked=True)
    assert sha256(first.path) == sha256(second.path)
    # warm: no RPM, no blob, no file payload was requested again
    assert [r for r in stack.yum.log[yum_before:] if r.path.endswith(".rpm")] == []
    assert [s for s in stack.proxy.seen if "/blobs/" in s[1]] == []
    assert [r for r in stack.site.server.log if r.method == "GET"] == []
    assert second.stats.downloaded == 0 and second.stats.cache_hits > 0
    # a fresh cache gives the same bytes too (nothing depends on timing or on what was cached)
    third = build(m, tmp_path / "c", Cache(tmp_path / "cache2"), quiet=True, locked=True)
    assert sha256(third.path) == sha256(first.path)


def test_locked_build_refuses_a_changed_manifest_and_a_vanished_upstream(tmp_path, stack, yum_repos_copy):
    text = stack.manifest(packages=K8S, cni="none").replace(stack.repo_urls["extras"], yum_repos_copy.url("extras"))
    path = write_manifest(tmp_path, text)
    cache = Cache(tmp_path / "cache")
    lock(load_manifest(path), cache)
    write_manifest(tmp_path, text.replace("version: '1.0'", "version: '1.1'"))
    with pytest.raises(ManifestError, match="changed since this lock was written"):
        build(load_manifest(path), tmp_path / "out", cache, quiet=True, locked=True)
    write_manifest(tmp_path, text)
    kubectl = next(p for p in yum_repos_copy.upstream.repos["extras"].packages if p.nevra.startswith("kubectl-1.30.4"))
    yum_repos_copy.upstream.rpm_path("extras", kubectl).unlink()
    with pytest.raises(FetchError, match=r"kubectl-0:1.30.4.*does not exist upstream \(HTTP 404\)"):
        build(load_manifest(path), tmp_path / "out", Cache(tmp_path / "fresh"), quiet=True, locked=True)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_cli_build_prints_summary_and_json(tmp_path, stack):
    path = write_manifest(tmp_path, stack.manifest(packages=K8S, cni="none", k8s=None,
                                                   extra_images=["registry.k8s.io/pause:3.9"]))
    cmd = [sys.executable, "-m", "bundler.cli", "build", str(path), "--cache", str(tmp_path / "cache"), "-o",
           str(tmp_path / "out")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout and "packages" in r.stdout and "images" in r.stdout and "cache hits" in r.stdout
    r = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=300)
    summary = json.loads(r.stdout)
    assert summary["downloaded"]["count"] == 0 and summary["steps"]["images"]["count"] == 1


def test_signed_build_verifies_with_its_key_only(tmp_path, stack, gpg_keys, monkeypatch):
    from bundler.bundle.verify import verify

    signer, stranger = gpg_keys
    monkeypatch.setenv("GNUPGHOME", str(signer.home))
    m = load_manifest(write_manifest(tmp_path, stack.manifest(packages=K8S, cni="none", k8s=None)))
    result = build(m, tmp_path / "out", Cache(tmp_path / "cache"), quiet=True, sign_key=signer.fpr)
    monkeypatch.delenv("GNUPGHOME")
    good = verify(result.path, key=signer.public)
    assert good.ok, good.format()
    bad = verify(result.path, key=stranger.public)
    assert not bad.ok and "SHA256SUMS.asc" in bad.format()


def test_diff_and_inspect_of_two_real_bundles(tmp_path, stack):
    from bundler.bundle.diff import diff
    from bundler.bundle.inspect import inspect

    ref = "docker.io/library/difftest:1"
    cache = Cache(tmp_path / "cache")
    stack.push(ref, seed="old")
    old_pkgs = ["kubeadm-1.30.3", "kubelet-1.30.4", "kubectl-1.30.4", "containerd.io"]
    old = build(load_manifest(write_manifest(tmp_path, stack.manifest(packages=old_pkgs, cni="none", k8s=None,
                                                                      extra_images=[ref]), "a.yaml")),
                tmp_path / "a", cache, quiet=True)
    stack.push(ref, seed="new")
    new = build(load_manifest(write_manifest(tmp_path, stack.manifest(packages=K8S, cni="none", k8s=None,
                                                                      extra_images=[ref]), "b.yaml")),
                tmp_path / "b", cache, quiet=True)
    d = diff(old.path, new.path)
    assert [(u["name"], u["old"], u["new"]) for u in d["packages"]["upgraded"]] == [
        ("kubeadm", "1.30.3-150500.1.1", "1.30.4-150500.1.1")]
    assert not d["packages"]["added"] and not d["packages"]["removed"]
    assert [c["ref"] for c in d["images"]["changed"]] == [ref]
    assert not d["files"]["added"] and not d["files"]["removed"] and not d["files"]["changed"]
    info = inspect(new.path)
    assert info["images"]["count"] == 1 and info["packages"]["count"] == len(new.inputs.packages)


def test_binary_install_mode_ships_verified_binaries(tmp_path, stack):
    m = load_manifest(write_manifest(tmp_path, stack.manifest(packages=["httpd-tools"], install="binaries")))
    result = build(m, tmp_path / "out", Cache(tmp_path / "cache"), quiet=True, fmt="dir")
    bom = json.loads((result.path / "bundle.json").read_text())
    pinned = {f["name"]: f["pinnedBy"] for f in bom["files"]}
    assert pinned["kubeadm"] == pinned["kubelet"] == pinned["kubectl"] == pinned["crictl"] == "publisher"
    assert pinned["docker-26.1.4.tgz"] == "first-fetch"  # Docker publishes no checksum: pinned by the lock
    assert any(n.startswith("cni-plugins-linux-amd64-") for n in pinned)
    for name in ("kubeadm", "kubelet", "kubectl", "crictl"):
        f = result.path / "files" / name
        assert f.is_file() and f.stat().st_mode & 0o111, name
    assert b"crictl test double" in (result.path / "files" / "crictl").read_bytes()  # extracted from the tarball


def test_images_follow_the_kubeadm_the_bundle_ships(tmp_path, stack, caplog):
    """The test upstream's kubeadm-1.30.3 (a TEST DOUBLE shell script: no real kubeadm exists here) lists etcd
    3.5.99-0 where the builder's table says 3.5.12-0. The hosts will run that kubeadm, so the bundle must carry
    what it lists; `plan` downloads no package and keeps to the table until the RPM is in the cache."""
    from bundler.build import plan

    for ref in ["registry.k8s.io/etcd:3.5.99-0"] + [f"registry.k8s.io/{n}:v1.30.3" for n in (
            "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")]:
        stack.push(ref)
    pkgs = ["kubeadm-1.30.3", "kubelet-1.30.3", "kubectl-1.30.3", "containerd.io"]
    m = load_manifest(write_manifest(tmp_path, stack.manifest(k8s="1.30.3", cni="none", packages=pkgs)))
    cache = Cache(tmp_path / "cache")
    etcd = lambda refs: sorted(r for r in refs if "/etcd:" in r)  # noqa: E731

    cold = plan(m, cache)
    assert etcd(i["ref"] for i in cold["images"]) == ["registry.k8s.io/etcd:3.5.12-0"]
    assert cold["kubeadmImagesFrom"] == "the built-in table"
    with caplog.at_level("WARNING", logger="bundler"):
        result = build(m, tmp_path / "out", cache, quiet=True, fmt="dir")
    bom = json.loads((result.path / "bundle.json").read_text())
    assert etcd(i["ref"] for i in bom["images"]) == ["registry.k8s.io/etcd:3.5.99-0"]
    assert bom["kubernetes"] == {"version": "1.30.3", "imagesFrom": "the shipped kubeadm", "upgradeFrom": "1.29",
                                 "hops": []}
    assert "the shipped kubeadm lists other images for 1.30.3 than the built-in table" in caplog.text
    assert etcd(i["ref"] for i in plan(m, cache)["images"]) == ["registry.k8s.io/etcd:3.5.99-0"]  # now cached
    assert not list(cache.root.glob("kubeadm-*"))  # the scratch root is gone


def test_a_release_newer_than_the_table_builds_from_its_own_kubeadm(tmp_path, stack):
    """1.99.0 is in no table: the kubeadm of that release (`install: binaries`, a TEST DOUBLE shell script served
    with its .sha256 as dl.k8s.io publishes it) is asked, by `plan` too, and the bundle carries its list."""
    from bundler.build import plan
    from tests.upstream.stack import add_binaries
    from tests.upstream.yumrepos import kubeadm_double

    add_binaries(stack.site, k8s="1.99.0")
    stack.site.put("dl.k8s.io/release/v1.99.0/bin/linux/amd64/kubeadm",
                   kubeadm_double("1.99.0", etcd="3.6.99-0", pause="3.99", coredns="v1.99.0").encode(), ".sha256")
    want = [f"registry.k8s.io/{n}:v1.99.0" for n in ("kube-apiserver", "kube-controller-manager", "kube-scheduler",
                                                     "kube-proxy")]
    want += ["registry.k8s.io/pause:3.99", "registry.k8s.io/etcd:3.6.99-0", "registry.k8s.io/coredns/coredns:v1.99.0"]
    for ref in want:
        stack.push(ref)
    m = load_manifest(write_manifest(tmp_path, stack.manifest(k8s="1.99.0", cni="none", packages=["httpd-tools"],
                                                              install="binaries")))
    cache = Cache(tmp_path / "cache")
    p = plan(m, cache)
    assert [i["ref"] for i in p["images"]] == want and p["kubeadmImagesFrom"] == "the shipped kubeadm"
    result = build(m, tmp_path / "out", cache, quiet=True, fmt="dir")
    bom = json.loads((result.path / "bundle.json").read_text())
    assert [i["ref"] for i in bom["images"]] == sorted(want)  # bundle.json lists images as the lock does


def test_a_release_newer_than_the_table_without_a_kubeadm_to_ask_says_what_to_do(tmp_path, stack):
    from bundler.build import plan

    m = load_manifest(write_manifest(tmp_path, stack.manifest(k8s="1.98.0", cni="none", packages=["httpd-tools"])))
    with pytest.raises(ManifestError, match=r"1\.98\.0: the built-in table knows the kubeadm images of 1\.23, .*"
                                            r"Build on a Linux machine of the target's architecture"):
        plan(m, Cache(tmp_path / "cache"))


def test_corrupt_default_file_is_refused_by_its_publisher_checksum(tmp_path, stack):
    helm = next(k for k in stack.site.files if k.startswith("get.helm.sh/") and k.endswith(".tar.gz"))
    stack.site.server.corrupt("/" + helm)
    m = load_manifest(write_manifest(tmp_path, stack.manifest(packages=[], cni="none")))
    out = tmp_path / "out"
    with pytest.raises(FetchError, match=r"file 'helm'.*does not match its published checksum"):
        build(m, out, Cache(tmp_path / "cache"), quiet=True)
    stack.site.server.clear_faults()
    assert not out.exists() or not list(out.iterdir())


def test_locked_build_stores_images_under_their_full_names(tmp_path, stack):
    path = write_manifest(tmp_path, stack.manifest(packages=[], cni="none", k8s=None,
                                                   extra_images=["registry.k8s.io/pause:3.9"]))
    cache = Cache(tmp_path / "cache")
    lock(load_manifest(path), cache)
    result = build(load_manifest(path), tmp_path / "out", cache, quiet=True, locked=True, fmt="dir")
    index = json.loads((result.path / "images" / "index.json").read_text())
    stored = [d["annotations"]["io.airgap-bundler.image.ref"] for d in index["manifests"]]
    assert stored == ["registry.k8s.io/pause:3.9"]
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "registry.k8s.io/pause:3.9"
    r = subprocess.run(["skopeo", "inspect", f"oci:{result.path / 'images'}:registry.k8s.io/pause:3.9"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Digest"] == stack.images["registry.k8s.io/pause:3.9"]
    bom = json.loads((result.path / "bundle.json").read_text())
    assert bom["images"][0]["ref"] == "registry.k8s.io/pause:3.9"
    assert bom["images"][0]["digest"] == stack.images["registry.k8s.io/pause:3.9"]


def test_cache_prune_keeps_what_recent_builds_used(tmp_path, stack):
    import os
    import time as _time

    from bundler.fetch.prune import prune

    cache = Cache(tmp_path / "cache")
    m = load_manifest(write_manifest(tmp_path, stack.manifest(packages=K8S, cni="none", k8s=None)))
    build(m, tmp_path / "out", cache, quiet=True)
    count, size = cache.size()
    assert count > 0 and not (cache.root / "staging").exists()  # staging is in the output directory now...
    # ...and gone once the build is done: the tarball and its .sha256 remain
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{TOP}.tar.gz", f"{TOP}.tar.gz.sha256"]
    stale = cache.root / "blobs" / "sha256" / ("0" * 64)
    stale.write_bytes(b"from a build long ago")
    old = _time.time() - 40 * 86400
    os.utime(stale, (old, old))
    removed, freed = prune(cache, older_than_days=30)
    assert removed == 1 and not stale.exists() and cache.size() == (count, size)
    assert freed >= len(b"from a build long ago")  # plus leftovers: unpacked metadata, partial downloads
    removed, _ = prune(cache)
    assert removed == count and cache.size() == (0, 0)
    second = build(m, tmp_path / "out2", cache, quiet=True)
    assert second.stats.downloaded == len(second.inputs.packages)  # an empty cache fetches again


def test_build_split_size_writes_parts_that_join_with_the_printed_command(tmp_path, stack):
    path = write_manifest(tmp_path, stack.manifest(packages=K8S, cni="none", k8s=None))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "bundler.cli", "build", str(path), "--cache", str(tmp_path / "cache"), "-o",
           str(out), "--split-size", "1M"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    join = r.stdout.strip().splitlines()[-1].strip()
    assert join.startswith("sha256sum -c") and ".part[0-9]*" in join
    far = tmp_path / "far-side"
    far.mkdir()
    for p in out.iterdir():
        if ".part" in p.name or p.name.endswith(".sha256"):
            (far / p.name).write_bytes(p.read_bytes())
    subprocess.run(["sh", "-c", join], cwd=far, check=True, capture_output=True)
    assert sha256(far / f"{TOP}.tar.gz") == sha256(out / f"{TOP}.tar.gz")
    bad = subprocess.run(cmd[:-1] + ["lots"], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "lots" in bad.stderr and "Traceback" not in bad.stderr
