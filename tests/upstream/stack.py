"""The whole stand-in "internet" a bundle build needs: yum repos, an image registry, a download site.

Used by the builder's bundle tests and by the e2e rig. Everything is served on 127.0.0.1: Debian's
`docker-registry` holds the Kubernetes and CNI images (tiny synthetic ones, or real content the caller
supplies), and a plain HTTP site lays files out under the real upstream paths (github.com/..., get.helm.sh/,
raw.githubusercontent.com/...) with the publishers' checksum files, so a manifest reaches all of it
through `mirrors:` exactly as an operator behind a proxy would.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bundler.files.defaults import CALICO_VERSION, FLANNEL_VERSION, HELM_VERSION, REGISTRY_VERSION
from bundler.images.list import kubeadm_images
from tests.images.helpers import Registry, layer, multi, put_image, single

from .http import RepoHTTPServer

CALICO_IMAGES = [f"docker.io/calico/{n}:v{CALICO_VERSION}" for n in ("cni", "node", "kube-controllers")]
FLANNEL_IMAGES = [f"docker.io/flannel/flannel:v{FLANNEL_VERSION}",
                  "docker.io/flannel/flannel-cni-plugin:v1.5.1-flannel2"]
MIRRORED_HOSTS = ("github.com", "raw.githubusercontent.com", "get.helm.sh", "dl.k8s.io", "download.docker.com")


def _tgz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in sorted(members.items()):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o755, 0
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def cni_yaml(images: Iterable[str]) -> str:
    """A CNI manifest shaped like the real ones: a DaemonSet whose containers name the images."""
    containers = "\n".join(f"        - name: c{i}\n          image: {ref}" for i, ref in enumerate(images))
    return ("apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: cni-node\n  namespace: kube-system\n"
            "spec:\n  template:\n    spec:\n      containers:\n" + containers + "\n")


@dataclass
class Site:
    """A download site on loopback laid out as host/path, e.g. root/get.helm.sh/helm-v3.15.4-linux-amd64.tar.gz."""

    root: Path
    server: RepoHTTPServer | None = None
    files: dict[str, str] = field(default_factory=dict)  # "host/path" -> sha256

    def put(self, host_path: str, data: bytes, checksum_suffix: str | None = None) -> str:
        p = self.root / host_path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        self.files[host_path] = digest
        if checksum_suffix:
            (self.root / f"{host_path}{checksum_suffix}").write_text(f"{digest}  {p.name}\n")
        return digest

    def url(self, host_path: str) -> str:
        assert self.server is not None
        return f"{self.server.url.rstrip('/')}/{host_path}"


@dataclass
class Stack:
    """yum repos (given), a registry and a site; `mirrors` points every upstream host at them."""

    repo_urls: dict[str, str]
    registry: Registry
    site: Site
    proxy: Any = None  # tests.images.helpers.Proxy in front of the registry: records every request
    yum: Any = None  # the RepoHTTPServer serving repo_urls, when the caller wants its request log
    images: dict[str, str] = field(default_factory=dict)  # original ref -> digest pushed

    @property
    def mirrors(self) -> dict[str, str]:
        reg = f"http://{self.proxy.host if self.proxy else self.registry.host}"
        site = self.site.url("").rstrip("/")
        out = {h: reg for h in ("registry.k8s.io", "docker.io", "quay.io", "k8s.gcr.io")}
        out.update({h: f"{site}/{h}" for h in MIRRORED_HOSTS})
        return out

    def manifest(self, *, name: str = "stack", version: str = "1.0", k8s: str | None = "1.30.4",
                 cni: str = "calico", runtime: str = "containerd", packages: Iterable[str] = (),
                 media: Iterable[str] = ("media",), extra_images: Iterable[str] = (), files: Iterable[dict] = (),
                 prefer: str = "media", os_: str = "el9", install: str = "packages") -> str:
        lines = [
            "apiVersion: bundler/v1", "kind: Bundle", f"metadata: {{name: {name}, version: '{version}'}}", "spec:",
            f"  target: {{os: {os_}, arch: x86_64}}", f"  runtime: {runtime}", f"  cni: {cni}",
            f"  prefer: {prefer}", f"  install: {install}",
        ]
        if k8s:
            lines.append(f"  kubernetes: {{version: {k8s}}}")
        lines.append("  repos:")
        for rname, url in self.repo_urls.items():
            lines.append(f"    - {{name: {rname}, baseurl: '{url}', onMedia: {str(rname in media).lower()}}}")
        lines.append(f"  packages: {json.dumps(list(packages))}")
        lines.append(f"  images: {json.dumps(list(extra_images))}")
        lines.append(f"  files: {json.dumps(list(files))}")
        lines.append(f"  mirrors: {json.dumps(self.mirrors)}")
        return "\n".join(lines) + "\n"

    def push(self, ref: str, seed: str | None = None, layers: list[tuple[bytes, bytes]] | None = None,
             arm64_layers: list[tuple[bytes, bytes]] | None = None) -> str:
        """Push a small image (or the given layers) under the registry path the mirror maps ref to.

        With arm64_layers, an OCI index with a linux/amd64 and a linux/arm64 child, as the real images are.
        """
        host, _, rest = ref.partition("/")
        repo, _, tag = rest.rpartition(":")
        if host == "docker.io" and "/" not in repo:
            repo = f"library/{repo}"
        img = single(layers or [layer(2_000, seed or ref)], label=ref)
        if arm64_layers:
            arm = single(arm64_layers, arch="arm64", variant="v8", label=ref)
            img = multi([(img, {"architecture": "amd64", "os": "linux"}),
                         (arm, {"architecture": "arm64", "os": "linux", "variant": "v8"})])
        digest = put_image(self.registry.host, repo, tag, img)
        self.images[ref] = digest
        return digest


def build_site(root: Path, *, registry_binary: bytes = b"#!/bin/sh\necho registry test binary\n",
               helm_binary: bytes = b"#!/bin/sh\necho helm test binary\n") -> Site:
    """The default files of a k8s manifest, at their real upstream paths with their checksum files."""
    site = Site(root)
    rel = f"github.com/distribution/distribution/releases/download/v{REGISTRY_VERSION}"
    site.put(f"{rel}/registry_{REGISTRY_VERSION}_linux_amd64.tar.gz",
             _tgz({"registry": registry_binary, "LICENSE": b"Apache-2.0\n"}), ".sha256")
    site.put(f"get.helm.sh/helm-v{HELM_VERSION}-linux-amd64.tar.gz", _tgz({"linux-amd64/helm": helm_binary}),
             ".sha256sum")
    site.put(f"raw.githubusercontent.com/projectcalico/calico/v{CALICO_VERSION}/manifests/calico.yaml",
             cni_yaml(CALICO_IMAGES).encode())
    site.put(f"github.com/flannel-io/flannel/releases/download/v{FLANNEL_VERSION}/kube-flannel.yml",
             cni_yaml(FLANNEL_IMAGES).encode())
    return site


def add_binaries(site: Site, k8s: str = "1.30.4", arch: str = "amd64") -> None:
    """The `install: binaries` downloads (kube binaries, crictl, CNI plugins, static docker) at their real paths."""
    from bundler.files.defaults import DOCKER_STATIC_VERSION, cni_plugins_version, crictl_version

    minor = ".".join(k8s.split(".")[:2])
    for b in ("kubeadm", "kubelet", "kubectl"):
        site.put(f"dl.k8s.io/release/v{k8s}/bin/linux/{arch}/{b}", f"#!/bin/sh\necho {b} test double\n".encode(),
                 ".sha256")
    crictl = crictl_version(minor)
    site.put(f"github.com/kubernetes-sigs/cri-tools/releases/download/v{crictl}/crictl-v{crictl}-linux-{arch}.tar.gz",
             _tgz({"crictl": b"#!/bin/sh\necho crictl test double\n"}), ".sha256")
    cni = cni_plugins_version(minor)
    site.put(f"github.com/containernetworking/plugins/releases/download/v{cni}/cni-plugins-linux-{arch}-v{cni}.tgz",
             _tgz({"./bridge": b"bridge", "./host-local": b"host-local", "./loopback": b"loopback"}), ".sha256")
    site.put(f"download.docker.com/linux/static/stable/x86_64/docker-{DOCKER_STATIC_VERSION}.tgz",
             _tgz({"docker/dockerd": b"dockerd", "docker/containerd": b"containerd", "docker/runc": b"runc"}))


def k8s_images(version: str, cni: str) -> list[str]:
    return kubeadm_images(version) + {"calico": CALICO_IMAGES, "flannel": FLANNEL_IMAGES}.get(cni, [])
