"""The download site of the e2e upstream: tests/upstream/stack.build_site with real content where it can be had.

* the registry release tarball carries Debian's real registry program (/usr/bin/docker-registry of the
  docker-registry package, renamed `registry`, as in distribution's release tarball);
* the helm tarball carries the helm TEST DOUBLE (doubles/helm.py; no helm binary can be had here);
* calico.yaml is shaped like the real manifest: the calico-node DaemonSet (with the commented
  CALICO_IPV4POOL_CIDR the installer uncomments for --pod-subnet) and the calico-kube-controllers
  Deployment, naming the calico images.
"""

from __future__ import annotations

import os
from pathlib import Path

from bundler.files.defaults import CALICO_VERSION, HELM_VERSION
from tests.upstream.stack import Site, build_site

from .repos import DOUBLES

REGISTRY_PROGRAM = "/usr/bin/docker-registry"


def calico_yaml(version: str = CALICO_VERSION) -> str:
    img = f"docker.io/calico/{{}}:v{version}"
    return f"""---
# Source: calico/templates/calico-config.yaml (airgap-bundler e2e stand-in for calico v{version})
kind: ConfigMap
apiVersion: v1
metadata:
  name: calico-config
  namespace: kube-system
data:
  typha_service_name: "none"
  calico_backend: "bird"
  veth_mtu: "0"
---
# Source: calico/templates/calico-node.yaml
kind: DaemonSet
apiVersion: apps/v1
metadata:
  name: calico-node
  namespace: kube-system
  labels:
    k8s-app: calico-node
spec:
  selector:
    matchLabels:
      k8s-app: calico-node
  template:
    metadata:
      labels:
        k8s-app: calico-node
    spec:
      hostNetwork: true
      initContainers:
        - name: install-cni
          image: {img.format("cni")}
          command: ["/opt/cni/bin/install"]
      containers:
        - name: calico-node
          image: {img.format("node")}
          env:
            - name: DATASTORE_TYPE
              value: "kubernetes"
            # The default IPv4 pool to create on startup if none exists. Pod IPs will be
            # chosen from this range. Changing this value after installation will have
            # no effect. This should fall within `--cluster-cidr`.
            # - name: CALICO_IPV4POOL_CIDR
            #   value: "192.168.0.0/16"
            - name: CALICO_IPV4POOL_IPIP
              value: "Always"
---
# Source: calico/templates/calico-kube-controllers.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: calico-kube-controllers
  namespace: kube-system
  labels:
    k8s-app: calico-kube-controllers
spec:
  replicas: 1
  selector:
    matchLabels:
      k8s-app: calico-kube-controllers
  template:
    metadata:
      labels:
        k8s-app: calico-kube-controllers
    spec:
      containers:
        - name: calico-kube-controllers
          image: {img.format("kube-controllers")}
"""


def helm_double() -> bytes:
    return (DOUBLES / "helm.py").read_text().replace("@HELM_VERSION@", HELM_VERSION).encode()


def build_e2e_site(dest: str | os.PathLike[str]) -> Site:
    """The files of a k8s manifest at their real upstream paths, with the publishers' checksum files."""
    site = build_site(Path(dest), registry_binary=Path(REGISTRY_PROGRAM).read_bytes(), helm_binary=helm_double())
    site.put(f"raw.githubusercontent.com/projectcalico/calico/v{CALICO_VERSION}/manifests/calico.yaml",
             calico_yaml().encode())
    return site


def standalone_double(name: str) -> bytes:
    """A kube TEST DOUBLE as one file (its kubedouble library inlined), for `install: binaries` bundles,
    where no RPM puts the library in place: the release site serves bare binaries."""
    from .repos import K8S_VERSION, _double, kubedouble_lib

    text = _double(name, K8S_VERSION)
    inline = ("import types as _types  # noqa: E402\n"
              "kd = _types.ModuleType('kubedouble')\n"
              f"exec(compile({kubedouble_lib(K8S_VERSION)!r}, 'kubedouble.py', 'exec'), kd.__dict__)\n"
              "sys.modules['kubedouble'] = kd\n")
    if "import kubedouble as kd  # noqa: E402\n" in text:
        text = text.replace("import kubedouble as kd  # noqa: E402\n", inline)
    return text.encode()


def add_e2e_binaries(site: Site) -> None:
    """What `install: binaries` downloads, at the real paths with the publishers' checksum files: the kube
    binaries (TEST DOUBLES), crictl (TEST DOUBLE), Debian's real CNI plugins, and a stand-in for Docker's
    static tarball holding Debian's real containerd, its runc shim, ctr and runc (dockerd left out: the
    binaries e2e runs the containerd runtime)."""
    import io
    import tarfile

    from bundler.files.defaults import DOCKER_STATIC_VERSION, cni_plugins_version, crictl_version

    from .repos import K8S_VERSION

    def tgz(members: dict[str, Path | bytes]) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as t:
            for arcname, src in sorted(members.items()):
                data = src if isinstance(src, bytes) else Path(src).read_bytes()
                ti = tarfile.TarInfo(arcname)
                ti.size, ti.mode, ti.mtime = len(data), 0o755, 0
                t.addfile(ti, io.BytesIO(data))
        return buf.getvalue()

    minor = ".".join(K8S_VERSION.split(".")[:2])
    dl = f"dl.k8s.io/release/v{K8S_VERSION}/bin/linux/amd64"
    for b in ("kubeadm", "kubelet", "kubectl"):
        site.put(f"{dl}/{b}", standalone_double(b), ".sha256")
    crictl = crictl_version(minor)
    site.put(f"github.com/kubernetes-sigs/cri-tools/releases/download/v{crictl}/crictl-v{crictl}-linux-amd64.tar.gz",
             tgz({"crictl": (DOUBLES / "crictl.py").read_bytes()}), ".sha256")
    cni = cni_plugins_version(minor)
    plugins = {f"./{p.name}": p for p in sorted(Path("/usr/lib/cni").iterdir()) if p.is_file()}
    site.put(f"github.com/containernetworking/plugins/releases/download/v{cni}/cni-plugins-linux-amd64-v{cni}.tgz",
             tgz(plugins), ".sha256")
    site.put(f"download.docker.com/linux/static/stable/x86_64/docker-{DOCKER_STATIC_VERSION}.tgz",
             tgz({"docker/containerd": Path("/usr/bin/containerd"),
                  "docker/containerd-shim-runc-v2": Path("/usr/bin/containerd-shim-runc-v2"),
                  "docker/ctr": Path("/usr/bin/ctr"), "docker/runc": Path("/usr/sbin/runc")}))
