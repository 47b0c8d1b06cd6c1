"""The mirror table's rewrite rule, as docs/manifest.md states it (the downloads through it are tested with real
servers in test_bundle_build and tests/images)."""

from __future__ import annotations

import pytest

from bundler.fetch.http import apply_mirrors, mirror_key

TABLE = {
    "download.docker.com": "mirrors.aliyun.com/docker-ce",
    "pkgs.k8s.io/core:/stable:/v1.30": "mirrors.example.cn/k8s-130",
    "pkgs.k8s.io": "mirrors.ustc.edu.cn/kubernetes",
    "registry.k8s.io": "registry.aliyuncs.com/google_containers",
    "registry.k8s.io/coredns/coredns": "registry.aliyuncs.com/google_containers/coredns",
    "127.0.0.1:5000": "http://10.0.0.5:8080/proxy/",
}


@pytest.mark.parametrize("url,want", [
    ("https://download.docker.com/linux/centos/9/x86_64/stable/",
     "https://mirrors.aliyun.com/docker-ce/linux/centos/9/x86_64/stable/"),
    ("https://pkgs.k8s.io/core:/stable:/v1.30/rpm/repodata/repomd.xml",
     "https://mirrors.example.cn/k8s-130/rpm/repodata/repomd.xml"),  # the longer key wins
    ("https://pkgs.k8s.io/core:/stable:/v1.31/rpm/", "https://mirrors.ustc.edu.cn/kubernetes/core:/stable:/v1.31/rpm/"),
    ("https://registry.k8s.io/kube-apiserver", "https://registry.aliyuncs.com/google_containers/kube-apiserver"),
    ("https://registry.k8s.io/coredns/coredns", "https://registry.aliyuncs.com/google_containers/coredns"),
    ("https://registry.k8s.io/coredns/coredns-extra", "https://registry.aliyuncs.com/google_containers/coredns/coredns-extra"),
    ("https://127.0.0.1:5000/v2/x", "http://10.0.0.5:8080/proxy/v2/x"),  # a value with a scheme replaces it
    ("https://quay.io/calico/node", "https://quay.io/calico/node"),  # no entry: unchanged
    ("https://download.docker.com.evil.test/x", "https://download.docker.com.evil.test/x"),  # hosts match whole
])
def test_rewrite(url: str, want: str) -> None:
    assert apply_mirrors(url, TABLE) == want


def test_key_is_reported_as_written() -> None:
    assert mirror_key("https://registry.k8s.io/coredns/coredns", {"registry.k8s.io/coredns/coredns/": "m/x"}) \
        == "registry.k8s.io/coredns/coredns/"
    assert mirror_key("https://registry.k8s.io/pause", {}) is None
