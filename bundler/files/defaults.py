"""The files a manifest implies without listing them: registry, CNI manifest, cri-dockerd, helm, binaries.

Each default names the publisher's checksum file where one exists; where the publisher has none (CNI
manifests, Docker's static tarballs) the first build pins the sha256 in the lock and later builds
(`--locked`) verify against it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..manifest.model import FileEntry, Manifest

REGISTRY_VERSION = "2.8.3"
HELM_VERSION = "3.15.4"
CALICO_VERSION = "3.28.1"
FLANNEL_VERSION = "0.25.6"
CRI_DOCKERD_VERSION = "0.3.15"
DOCKER_STATIC_VERSION = "26.1.4"
# crictl follows the Kubernetes minor; the CNI plugins release that minor was tested with.
CNI_PLUGINS = {"1.23": "1.1.1", "1.24": "1.1.1", "1.25": "1.1.1", "1.26": "1.2.0", "1.27": "1.3.0",
               "1.28": "1.3.0", "1.29": "1.4.0", "1.30": "1.4.0", "1.31": "1.5.1", "1.32": "1.6.0"}
CRICTL = {"1.23": "1.23.0", "1.24": "1.24.2", "1.25": "1.25.0", "1.26": "1.26.1", "1.27": "1.27.1",
          "1.28": "1.28.0", "1.29": "1.29.0", "1.30": "1.30.1", "1.31": "1.31.1", "1.32": "1.32.0"}


def crictl_version(minor: str) -> str:
    """cri-tools follows Kubernetes' minor: v1.N.0 exists for every release after the table."""
    return CRICTL.get(minor, f"{minor}.0")


def cni_plugins_version(minor: str) -> str:
    """The CNI plugins release for a Kubernetes minor; the newest known one after the table."""
    newest = max(CNI_PLUGINS, key=lambda k: tuple(int(x) for x in k.split(".")))
    return CNI_PLUGINS.get(minor, CNI_PLUGINS[newest])


@dataclass(frozen=True)
class DefaultFile:
    """A default file: entry plus where its publisher's checksum is (None: pinned by the lock)."""

    entry: FileEntry
    checksum_url: str | None
    reason: str


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _go_arch(arch: str) -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}[arch]


def default_files(m: Manifest) -> list[DefaultFile]:
    """The defaults for this manifest, in a stable order."""
    arch = _go_arch(m.target.arch)
    out: list[DefaultFile] = []
    if not m.kubernetes_version:
        return out
    k8s, minor = m.kubernetes_version, _minor(m.kubernetes_version)

    def add(url: str, kind: str, name: str, checksum_url: str | None, reason: str, extract: str | None = None):
        out.append(DefaultFile(FileEntry(url=url, kind=kind, name=name, extract=extract), checksum_url, reason))

    rel = f"https://github.com/distribution/distribution/releases/download/v{REGISTRY_VERSION}"
    tgz = f"registry_{REGISTRY_VERSION}_linux_{arch}.tar.gz"
    add(f"{rel}/{tgz}", "binary", "registry", f"{rel}/{tgz}.sha256", "the local image registry", "registry")

    if m.cni == "calico":
        add(f"https://raw.githubusercontent.com/projectcalico/calico/v{CALICO_VERSION}/manifests/calico.yaml",
            "manifest", "calico.yaml", None, "CNI manifest")
    elif m.cni == "flannel":
        add(f"https://github.com/flannel-io/flannel/releases/download/v{FLANNEL_VERSION}/kube-flannel.yml",
            "manifest", "flannel.yaml", None, "CNI manifest")

    if m.runtime == "docker" and tuple(int(x) for x in minor.split(".")) >= (1, 24):
        el = "el7" if m.target.os == "el7" else "el8"
        rpm = f"cri-dockerd-{CRI_DOCKERD_VERSION}-3.{el}.{m.target.arch}.rpm"
        add(f"https://github.com/Mirantis/cri-dockerd/releases/download/v{CRI_DOCKERD_VERSION}/{rpm}", "rpm", rpm,
            None, "dockershim replacement for Kubernetes >= 1.24")

    helm = f"helm-v{HELM_VERSION}-linux-{arch}.tar.gz"
    add(f"https://get.helm.sh/{helm}", "binary", "helm", f"https://get.helm.sh/{helm}.sha256sum", "helm",
        f"linux-{arch}/helm")

    if m.install == "binaries":
        dl = f"https://dl.k8s.io/release/v{k8s}/bin/linux/{arch}"
        for b in ("kubeadm", "kubelet", "kubectl"):
            add(f"{dl}/{b}", "binary", b, f"{dl}/{b}.sha256", "binary install mode")
        crictl = crictl_version(minor)
        cr = f"https://github.com/kubernetes-sigs/cri-tools/releases/download/v{crictl}"
        add(f"{cr}/crictl-v{crictl}-linux-{arch}.tar.gz", "binary", "crictl",
            f"{cr}/crictl-v{crictl}-linux-{arch}.tar.gz.sha256", "binary install mode", "crictl")
        cni = cni_plugins_version(minor)
        cp = f"https://github.com/containernetworking/plugins/releases/download/v{cni}"
        add(f"{cp}/cni-plugins-linux-{arch}-v{cni}.tgz", "archive", f"cni-plugins-linux-{arch}-v{cni}.tgz",
            f"{cp}/cni-plugins-linux-{arch}-v{cni}.tgz.sha256", "binary install mode")
        docker = f"docker-{DOCKER_STATIC_VERSION}.tgz"
        add(f"https://download.docker.com/linux/static/stable/{m.target.arch}/{docker}", "archive", docker, None,
            "binary install mode (static docker/containerd/runc)")
    return out
