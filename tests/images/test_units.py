"""References, platform matching, the kubeadm table, CNI scanning, docker-daemon export with no daemon.

(The export from a real daemon is tested on the rig's dockerd: tests/e2e/test_docker_daemon_images.py.)"""

from __future__ import annotations

import pytest

from bundler.errors import FetchError, ManifestError
from bundler.fetch.cache import Cache
from bundler.images.daemon import export_daemon_image
from bundler.images.list import KUBEADM_IMAGES, check_kubeadm_table, cni_images, image_list, kubeadm_images
from bundler.oci.layout import OCILayout
from bundler.registry.client import normalize_platform
from bundler.registry.reference import ReferenceError, parse_reference

D = "sha256:" + "a" * 64


@pytest.mark.parametrize("text,want", [
    ("nginx", "docker.io/library/nginx:latest"),
    ("library/nginx:1.25", "docker.io/library/nginx:1.25"),
    ("index.docker.io/bitnami/redis:7", "docker.io/bitnami/redis:7"),
    ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
    ("registry.k8s.io/coredns/coredns:v1.11.1", "registry.k8s.io/coredns/coredns:v1.11.1"),
    ("localhost:5000/app", "localhost:5000/app:latest"),
    ("127.0.0.1:5000/a/b:1@" + D, "127.0.0.1:5000/a/b:1@" + D),
    ("quay.io/calico/node@" + D, "quay.io/calico/node@" + D),
])
def test_reference_normalisation(text, want):
    assert str(parse_reference(text)) == want


def test_reference_parts():
    r = parse_reference("nginx")
    assert (r.registry, r.repository, r.tag, r.api_host) == ("docker.io", "library/nginx", "latest",
                                                              "registry-1.docker.io")
    assert parse_reference("quay.io/x@" + D).identifier == D


@pytest.mark.parametrize("bad", ["", "Nginx", "nginx:", "nginx@sha256:abc", "a//b", "reg.io/UPPER:1"])
def test_bad_references(bad):
    with pytest.raises(ReferenceError):
        parse_reference(bad)


def test_platform_normalisation():
    assert normalize_platform("linux/arm64") == normalize_platform({"os": "linux", "architecture": "arm64",
                                                                     "variant": "v8"})
    assert normalize_platform({"os": "linux", "architecture": "aarch64"}) == ("linux", "arm64", "v8")
    assert normalize_platform("linux/arm") == ("linux", "arm", "v7")
    assert normalize_platform("linux/amd64") == ("linux", "amd64", "")


def test_kubeadm_table():
    assert kubeadm_images("1.30.4") == [
        "registry.k8s.io/kube-apiserver:v1.30.4", "registry.k8s.io/kube-controller-manager:v1.30.4",
        "registry.k8s.io/kube-scheduler:v1.30.4", "registry.k8s.io/kube-proxy:v1.30.4",
        "registry.k8s.io/pause:3.9", "registry.k8s.io/etcd:3.5.12-0", "registry.k8s.io/coredns/coredns:v1.11.1"]
    assert "registry.k8s.io/etcd:3.5.15-0" in kubeadm_images("1.30.5")  # the Sept 2024 etcd cherry-pick
    assert "registry.k8s.io/coredns/coredns:v1.11.3" in kubeadm_images("v1.31.2")
    assert "registry.k8s.io/coredns/coredns:v1.11.3" in kubeadm_images("1.30.5")  # #126797, 1.30.5 changelog
    assert "registry.k8s.io/etcd:3.5.24-0" in kubeadm_images("1.33.6")  # #135018, 1.33.6 changelog
    # the December 2022 patches moved the default registry off k8s.gcr.io (1.23.15, #113393)
    assert kubeadm_images("1.23.17")[4:] == ["registry.k8s.io/pause:3.6", "registry.k8s.io/etcd:3.5.5-0",
                                             "registry.k8s.io/coredns/coredns:v1.8.6"]
    assert "registry.k8s.io/coredns/coredns:v1.9.3" in kubeadm_images("1.26.0")  # kubeadm 1.26.0's real output
    assert kubeadm_images("1.23.0")[4:] == ["k8s.gcr.io/pause:3.6", "k8s.gcr.io/etcd:3.5.1-0",
                                            "k8s.gcr.io/coredns/coredns:v1.8.6"]
    for minor in range(23, 32):
        assert (1, minor) in KUBEADM_IMAGES
        assert len(kubeadm_images(f"1.{minor}.0")) == 7
    with pytest.raises(ManifestError, match="1.22"):
        kubeadm_images("1.22.3")
    with pytest.raises(ManifestError, match="full release version"):
        kubeadm_images("1.30")


def test_kubeadm_binary_is_compared(tmp_path, monkeypatch, caplog):
    """A kubeadm on PATH (a test double: no real kubeadm exists here) is asked; a disagreement is reported."""
    fake = tmp_path / "kubeadm"
    fake.write_text("#!/bin/sh\n# kubeadm TEST DOUBLE\n"
                    "[ \"$1 $2 $3\" = \"version -o short\" ] && { echo ${DOUBLE_VERSION:-v1.30.4}; exit 0; }\n"
                    "[ \"$1 $2 $3 $4 $5\" = \"config images list --kubernetes-version v1.30.4\" ] || exit 2\n"
                    "for i in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do "
                    "echo registry.k8s.io/$i:v1.30.4; done\n"
                    "echo registry.k8s.io/pause:3.9\necho registry.k8s.io/etcd:3.5.99-0\n"
                    "echo registry.k8s.io/coredns/coredns:v1.11.1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert check_kubeadm_table("1.30.4") == ["table: registry.k8s.io/etcd:3.5.12-0",
                                             "kubeadm: registry.k8s.io/etcd:3.5.99-0"]
    # the image list follows the local kubeadm (test double above) and says that the table differs
    with caplog.at_level("WARNING", logger="bundler"):
        listed, source = image_list("1.30.4")
    assert source == "kubeadm on PATH"
    assert "registry.k8s.io/etcd:3.5.99-0" in listed and "registry.k8s.io/etcd:3.5.12-0" not in listed
    assert "using kubeadm's list" in caplog.text
    # a kubeadm of another release prints its own CoreDNS/etcd: not asked, the table is used
    monkeypatch.setenv("DOUBLE_VERSION", "v1.31.2")
    assert check_kubeadm_table("1.30.4") == []
    assert image_list("1.30.4") == (kubeadm_images("1.30.4"), "the built-in table")
    monkeypatch.delenv("DOUBLE_VERSION")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert check_kubeadm_table("1.30.4") == []  # no kubeadm here (as on this build machine)
    assert "registry.k8s.io/etcd:3.5.12-0" in image_list("1.30.4")[0]


CNI = """
apiVersion: apps/v1
kind: DaemonSet
spec:
  template:
    spec:
      initContainers:
        - name: install-cni
          image: docker.io/calico/cni:v3.27.0
      containers:
        - name: node
          image: "docker.io/calico/node:v3.27.0"
          env:
            - name: NOTE
              value: |
                image: not-an-image:1
---
kind: Deployment
spec:
  template:
    spec:
      containers:
        - {name: kc, image: docker.io/calico/kube-controllers:v3.27.0}
        - name: again
          image: docker.io/calico/cni:v3.27.0
"""


def test_cni_images_and_list():
    assert cni_images(CNI) == ["docker.io/calico/cni:v3.27.0", "docker.io/calico/node:v3.27.0",
                               "docker.io/calico/kube-controllers:v3.27.0"]
    assert cni_images("a: [\n  - image: quay.io/x/y:1 # templated\n") == ["quay.io/x/y:1"]  # not YAML: line scan
    out, _ = image_list("1.30.4", [CNI], ["registry.k8s.io/pause:3.9", "myorg/app:1"])
    assert out[:7] == kubeadm_images("1.30.4") and out[-1] == "myorg/app:1" and len(out) == len(set(out)) == 11


def test_docker_daemon_unreachable_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such-docker.sock")
    with pytest.raises(FetchError, match=r"docker-daemon:myapp:1: no Docker daemon is reachable"):
        export_daemon_image("docker-daemon:myapp:1", OCILayout(tmp_path / "s"), Cache(tmp_path / "c"))
