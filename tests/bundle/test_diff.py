"""diff: rpm version order, and a change list that shows exactly what changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bundler.bundle.diff import diff, diff_boms, evrcmp, format_diff, rpmvercmp

from .bundles import IMAGES, PACKAGES, content, write_bundle

# From rpm's own test suite (tests/rpmvercmp.at) plus separators and leading zeros.
VERCMP = [
    ("1.0", "1.0", 0), ("1.0", "2.0", -1), ("2.0", "1.0", 1), ("2.0.1", "2.0.1", 0), ("2.0", "2.0.1", -1),
    ("2.0.1a", "2.0.1a", 0), ("2.0.1a", "2.0.1", 1), ("5.5p1", "5.5p2", -1), ("5.5p10", "5.5p10", 0),
    ("5.5p1", "5.5p10", -1), ("10xyz", "10.1xyz", -1), ("xyz10", "xyz10.1", -1), ("xyz.4", "xyz.4", 0),
    ("xyz.4", "8", -1), ("8", "xyz.4", 1), ("xyz.4", "2", -1), ("2", "xyz.4", 1), ("5.5p2", "5.6p1", -1),
    ("5.6p1", "6.5p1", -1), ("6.0.rc1", "6.0", 1), ("6.0", "6.0.rc1", -1), ("10b2", "10a1", 1),
    ("10a2", "10b2", -1), ("1.0aa", "1.0aa", 0), ("1.0a", "1.0aa", -1), ("10.0001", "10.1", 0),
    ("10.0001", "10.0039", -1), ("4.999.9", "5.0", -1), ("20101121", "20101122", -1), ("2_0", "2_0", 0),
    ("2.0", "2_0", 0), ("a", "a", 0), ("a+", "a+", 0), ("a+", "a_", 0), ("+a", "_a", 0), ("+_", "_+", 0),
    ("1.0~rc1", "1.0~rc1", 0), ("1.0~rc1", "1.0", -1), ("1.0", "1.0~rc1", 1), ("1.0~rc1", "1.0~rc2", -1),
    ("1.0~rc1~git123", "1.0~rc1", -1), ("1.0^", "1.0^", 0), ("1.0^", "1.0", 1), ("1.0", "1.0^", -1),
    ("1.0^git1", "1.0", 1), ("1.0^git1", "1.0^git2", -1), ("1.0^git1", "1.01", -1),
    ("1.0^20160101", "1.0.1", -1), ("1.0^20160101^git1", "1.0^20160101", 1), ("1.0~rc1^git1", "1.0~rc1", 1),
    ("1.0^git1~pre", "1.0^git1", -1), ("1.0~rc1^git1", "1.0", -1), ("1.30.10", "1.30.9", 1),
]


@pytest.mark.parametrize(("a", "b", "expected"), VERCMP)
def test_rpmvercmp_matches_rpm(a: str, b: str, expected: int) -> None:
    assert rpmvercmp(a, b) == expected
    assert rpmvercmp(b, a) == -expected


def test_evrcmp_epoch_first_then_version_then_release() -> None:
    assert evrcmp((1, "1.0", "1"), (0, "9.9", "9")) == 1
    assert evrcmp((None, "1.0", "1.el9"), (0, "1.0", "1.el9")) == 0
    assert evrcmp((0, "1.0", "1.el9"), (0, "1.0", "1.el9_1")) == -1
    assert evrcmp(("2", "1.0", "1"), (1, "1.0", "1")) == 1


def test_one_package_upgraded_and_one_image_changed_exactly(tmp_path: Path) -> None:
    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    old_dir.mkdir()
    new_dir.mkdir()
    pk = [("kubeadm", 0, "1.30.10", "150500.1.1", "x86_64"), *PACKAGES[1:]]
    old = write_bundle(old_dir, content(packages=[("kubeadm", 0, "1.30.9", "150500.1.1", "x86_64"), *PACKAGES[1:]]))
    new = write_bundle(new_dir, content(packages=pk, images=[(IMAGES[0][0], b"pause rebuilt"), IMAGES[1]]))
    d = diff(old, new)
    assert d["changes"] == 2
    assert d["packages"] == {"added": [], "removed": [], "downgraded": [], "rebuilt": [], "upgraded": [
        {"name": "kubeadm", "arch": "x86_64", "old": "1.30.9-150500.1.1", "new": "1.30.10-150500.1.1"}]}
    assert [i["ref"] for i in d["images"]["changed"]] == ["registry.k8s.io/pause:3.9"]
    assert d["images"]["added"] == d["images"]["removed"] == []
    assert d["files"] == {"added": [], "removed": [], "changed": []} and d["metadata"] == {}
    text = format_diff(d)
    assert "2 changes" in text
    assert "^ kubeadm.x86_64  1.30.9-150500.1.1 -> 1.30.10-150500.1.1" in text
    assert "~ registry.k8s.io/pause:3.9  sha256:" in text
    assert len(text.splitlines()) == 5


def test_identical_bundles_have_no_changes(tmp_path: Path) -> None:
    b = write_bundle(tmp_path)
    d = diff(b, b)
    assert d["changes"] == 0
    assert format_diff(d).splitlines() == ["k8s-1.30-el9 1.0.0 -> k8s-1.30-el9 1.0.0: 0 changes"]


def test_added_removed_downgraded_rebuilt_files_and_metadata() -> None:
    old = json.loads(content()["bundle.json"])
    new = json.loads(content(packages=[("kubeadm", 0, "1.30.3", "150500.1.1", "x86_64"),
                                       ("containerd.io", 0, "1.7.20", "3.1.el9", "x86_64"),
                                       ("socat", 0, "1.7.4.1", "5.el9", "x86_64"),
                                       ("kernel", 0, "5.14.0", "1.el9", "x86_64"),
                                       ("kernel", 0, "5.14.0", "2.el9", "x86_64")],
                             images=IMAGES[:1] + [("docker.io/calico/node:v3.28.1", b"node")],
                             kubernetes="1.30.3", version="1.0.1")["bundle.json"])
    new["packages"][1]["sha256"] = "f" * 64
    new["files"][0]["sha256"] = "e" * 64
    new["files"].append({"name": "helm", "kind": "binary", "path": "files/helm", "sha256": "d" * 64})
    d = diff_boms(old, new)
    p = d["packages"]
    assert [x["name"] for x in p["downgraded"]] == ["kubeadm"]
    assert [x["name"] for x in p["rebuilt"]] == ["containerd.io"]
    assert [(x["name"], x["evr"]) for x in p["added"]] == [("kernel", "5.14.0-1.el9"), ("kernel", "5.14.0-2.el9"),
                                                         ("socat", "1.7.4.1-5.el9")]
    assert [x["name"] for x in p["removed"]] == ["conntrack-tools"]
    assert [x["ref"] for x in d["images"]["added"]] == ["docker.io/calico/node:v3.28.1"]
    assert [x["ref"] for x in d["images"]["removed"]] == ["registry.k8s.io/etcd:3.5.15-0"]
    assert [x["path"] for x in d["files"]["changed"]] == ["files/registry"]
    assert [x["path"] for x in d["files"]["added"]] == ["files/helm"]
    assert d["metadata"] == {"version": {"old": "1.0.0", "new": "1.0.1"},
                             "kubernetes": {"old": "1.30.4", "new": "1.30.3"}}
    text = format_diff(d)
    assert "DOWNGRADE" in text and "- conntrack-tools-1.4.7-2.el9.x86_64" in text
    assert "~ kubernetes: 1.30.4 -> 1.30.3" in text
