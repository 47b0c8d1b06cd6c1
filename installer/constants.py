"""Paths and ports the installer uses on the hosts, in one place (phases, checks, reset and status agree)."""

# the serving host: the repo server (bundle repo + OS media over HTTP) and the image registry
REPO_PORT = 8089
REGISTRY_PORT = 5000
PUSH_PORT = 5001  # the registry instance that accepts pushes, on 127.0.0.1 only
SERVE_PORTS = (REPO_PORT, REGISTRY_PORT, PUSH_PORT)
SERVE_ROOT = "/opt/airgap"
MEDIA_DIR = SERVE_ROOT + "/media"
REPO_COPY = SERVE_ROOT + "/repo"
PKI_DIR = "/etc/airgap-registry/pki"
CA_CERT = PKI_DIR + "/ca.crt"
TRUST_ANCHOR = "/etc/pki/ca-trust/source/anchors/airgap-registry-ca.crt"

# Kubernetes
API_PORT = 6443
CP_PORTS = (API_PORT, 2379, 2380, 10250, 10257, 10259)
WORKER_PORTS = (10250,)
KUBE_DIR = "/etc/kubernetes/airgap"  # the installer's own files (kubeadm configs, manifests)
ADMIN_CONF = "/etc/kubernetes/admin.conf"
KUBELET_CONF = "/etc/kubernetes/kubelet.conf"
APISERVER_MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"
KUBECTL = "kubectl --kubeconfig %s" % ADMIN_CONF
ROOT_KUBECONFIG = "/root/.kube/config"
