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
