"""Upgrade hops (spec.kubernetes.upgradeThrough) built from the real test yum repos and registry on loopback:
both releases' RPMs and images in one bundle, bundle.json as the installer's contract, --locked reproducible."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bundler.build import build, lock, plan
from bundler.bundle.verify import verify
from bundler.errors import ResolveError
from bundler.fetch.cache import Cache
from bundler.lock import manifest_dict, manifest_digest
from bundler.manifest import load_manifest
from installer.verify_bundle import verify as installer_verify
from tests.upstream.yumrepos import KUBEADM_DOUBLE_ETCD

TARGET, HOP = "1.30.4", "1.29.8"
K8S = [f"kubeadm-{TARGET}", f"kubelet-{TARGET}", f"kubectl-{TARGET}", "containerd.io"]
TOP = "stack-1.0-el9-x86_64"


def hop_images(v: str) -> list[str]:
    """What the test upstream's kubeadm TEST DOUBLE of release v lists (tests/upstream/yumrepos.py)."""
    return [f"registry.k8s.io/{n}:v{v}" for n in ("kube-apiserver", "kube-controller-manager", "kube-scheduler",
                                                     "kube-proxy")] + [
        "registry.k8s.io/pause:3.9", f"registry.k8s.io/etcd:{KUBEADM_DOUBLE_ETCD[v]}",
        "registry.k8s.io/coredns/coredns:v1.11.1"]


def hop_manifest(stack, tmp_path: Path, hops: str = f"[{HOP}]") -> Path:
    text = stack.manifest(packages=K8S, cni="none").replace(
        f"  kubernetes: {{version: {TARGET}}}", f"  kubernetes: {{version: {TARGET}, upgradeThrough: {hops}}}")
    assert "upgradeThrough" in text
    path = tmp_path / "stack.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def hop_stack(stack):
    """The session stack plus the hop release's control-plane images (pause/etcd/coredns are shared)."""
    for ref in hop_images(HOP):
        if ref not in stack.images:
            stack.push(ref)
    return stack


def test_a_hop_ships_both_releases_rpms_and_images_and_locked_builds_are_identical(tmp_path, hop_stack):
    m = load_manifest(hop_manifest(hop_stack, tmp_path))
    cache = Cache(tmp_path / "cache")
    _, data = lock(m, cache)
    assert [h["version"] for h in data["hops"]] == [HOP]
    first = build(m, tmp_path / "a", cache, quiet=True, locked=True)
    second = build(m, tmp_path / "b", Cache(tmp_path / "cache2"), quiet=True, locked=True)
    unlocked = build(m, tmp_path / "c", cache, quiet=True)
    assert first.sha256 == second.sha256 == unlocked.sha256  # the lock covers the hops: same bytes every time

    subprocess.run(["tar", "-xzf", str(first.path), "-C", str(tmp_path)], check=True)
    top = tmp_path / TOP
    bom = json.loads((top / "bundle.json").read_text())
    k8s = bom["kubernetes"]
    assert (k8s["version"], k8s["imagesFrom"], k8s["upgradeFrom"]) == (TARGET, "the shipped kubeadm", "1.28")
    [hop] = k8s["hops"]
    assert hop["version"] == HOP and hop["imagesFrom"] == "the shipped kubeadm"  # the hop's own kubeadm, asked
    assert hop["images"] == hop_images(HOP)
    assert sorted(p.split("-1.29.8-")[0] for p in hop["packages"]) == ["kubeadm", "kubectl", "kubelet"]
    # hop packages and images are ordinary entries of the top-level lists, present in the bundle
    nevras = {f"{p['name']}-{p['version']}-{p['release']}.{p['arch']}": p for p in bom["packages"]}
    assert set(hop["packages"]) <= set(nevras)
    for name in ("kubeadm", "kubelet", "kubectl"):
        assert sorted(p["version"] for p in bom["packages"] if p["name"] == name) == [HOP, TARGET]
    assert {p["version"] for p in bom["packages"] if p["name"] == "kubernetes-cni"} == {"1.3.0", "1.4.0"}  # 1.29's
    for p in bom["packages"]:
        assert hashlib.sha256((top / p["path"]).read_bytes()).hexdigest() == p["sha256"]
    refs = {i["ref"] for i in bom["images"]}
    assert set(hop["images"]) <= refs and f"registry.k8s.io/kube-apiserver:v{TARGET}" in refs
    index = json.loads((top / "images" / "index.json").read_text())
    assert set(hop["images"]) <= {d["annotations"]["io.airgap-bundler.image.ref"] for d in index["manifests"]}
    primary = subprocess.run(["sh", "-c", f"zcat {top}/repo/repodata/*-primary.xml.gz"], capture_output=True,
                             text=True, check=True).stdout
    assert primary.count("<name>kubeadm</name>") == 2  # both versions side by side in the repo's metadata
    assert bom["lock"]["hops"] == k8s["hops"]
    # the bundle verifies as any other (bundler verify, and the installer's own check of the unpacked tree)
    assert verify(first.path).ok
    assert installer_verify(str(top)) > len(bom["packages"])  # raises, naming every bad path, otherwise


def test_plan_shows_the_hops(tmp_path, hop_stack):
    path = hop_manifest(hop_stack, tmp_path)
    data = plan(load_manifest(path), Cache(tmp_path / "cache"))
    assert data["kubernetes"]["upgradeFrom"] == "1.28"
    assert [h["version"] for h in data["kubernetes"]["hops"]] == [HOP]
    r = subprocess.run([sys.executable, "-m", "bundler.cli", "plan", str(path), "--cache", str(tmp_path / "cache")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"Kubernetes {TARGET}, upgrades clusters from 1.28 through 1 hop(s):" in r.stdout
    assert f"hop {HOP}" in r.stdout and "kubeadm-1.29.8-" in r.stdout


def test_a_hop_the_repos_do_not_have_is_refused_naming_the_field(tmp_path, hop_stack):
    m = load_manifest(hop_manifest(hop_stack, tmp_path, "[1.29.9]"))
    with pytest.raises(ResolveError, match=r"spec.kubernetes.upgradeThrough 1.29.9: .*kubeadm-1.29.9.*"
                                           r"one repository per minor"):
        plan(m, Cache(tmp_path / "cache"))


def test_hopless_bundle_json_says_no_hops(tmp_path, stack):
    path = tmp_path / "plain.yaml"
    path.write_text(stack.manifest(packages=K8S, cni="none"))
    data = plan(load_manifest(path), Cache(tmp_path / "cache"))
    assert data["kubernetes"] == {"version": TARGET, "imagesFrom": data["kubeadmImagesFrom"], "upgradeFrom": "1.29",
                                  "hops": []}


def test_the_lock_digest_covers_hops_and_is_unchanged_for_manifests_without(tmp_path, stack):
    (tmp_path / "p.yaml").write_text(stack.manifest(packages=K8S, cni="none"))
    plain = load_manifest(tmp_path / "p.yaml")
    hopped = load_manifest(hop_manifest(stack, tmp_path))
    assert "upgrade_through" not in manifest_dict(plain)  # locks written before hops existed stay valid
    assert manifest_dict(hopped)["upgrade_through"] == [HOP]
    assert manifest_digest(plain) != manifest_digest(hopped)  # a lock without the hops is refused for this one
