"""What the cluster runs now, read from the cluster itself (not from the record), so a re-run after a failure
resumes from facts: the ClusterConfiguration's kubernetesVersion (kubeadm upgrade apply is done when it is at the
target), each Node's kubelet version, cordon and our annotation, and each host's kube package versions."""

import json
import re

from installer.constants import KUBECTL
from installer.errors import InstallerError
from installer.upgrade import path as P

ANNOTATION = "airgap-bundler/cordoned-by"
KUBE_PACKAGES = ("kubeadm", "kubelet", "kubectl")
CLUSTER_CONFIG = "%s -n kube-system get configmap kubeadm-config -o json" % KUBECTL
NODES = "%s get nodes -o json" % KUBECTL
RPM_QUERY = "rpm -q --qf '%%{NAME} %%{VERSION}-%%{RELEASE}\\n' %s 2>/dev/null | grep -v 'not installed'; true" \
    % " ".join(KUBE_PACKAGES)


def config_version(configmap_json):
    """kubernetesVersion of the ClusterConfiguration in `kubectl get configmap kubeadm-config -o json`."""
    try:
        data = json.loads(configmap_json).get("data") or {}
    except ValueError:
        return None
    m = re.search(r"(?m)^\s*kubernetesVersion:\s*['\"]?(v?[0-9][^'\"\s]*)", data.get("ClusterConfiguration") or "")
    return P.parse(m.group(1)) if m else None


def nodes(nodes_json):
    """{node name: {"kubelet": version tuple, "unschedulable": bool, "ours": operation id or None, "ready": bool}}"""
    try:
        items = json.loads(nodes_json).get("items") or []
    except ValueError:
        raise InstallerError("kubectl get nodes did not answer JSON: %r" % nodes_json[:200]) from None
    out = {}
    for i in items:
        meta = i.get("metadata") or {}
        status = i.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        out[meta.get("name")] = {
            "kubelet": P.parse((status.get("nodeInfo") or {}).get("kubeletVersion")),
            "unschedulable": bool((i.get("spec") or {}).get("unschedulable")),
            "ours": (meta.get("annotations") or {}).get(ANNOTATION),
            "ready": ready,
        }
    return out


def packages(rpm_output):
    """{name: version tuple} from RPM_QUERY's output."""
    out = {}
    for line in rpm_output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in KUBE_PACKAGES:
            out[parts[0]] = P.parse(parts[1])
    return out


def read_cluster(conn):
    """(ClusterConfiguration version or None, nodes) from a control plane."""
    res = conn.run(CLUSTER_CONFIG, check=False, timeout=60)
    version = config_version(res.stdout) if res.ok else None
    got = conn.check(NODES, "reading the cluster's nodes", timeout=60)
    return version, nodes(got.stdout)


def read_packages(conn):
    return packages(conn.run(RPM_QUERY, check=False, timeout=60).stdout)


def current_version(cluster_version, node_state, recorded):
    """The version the upgrade path starts from: the ClusterConfiguration's (the control plane), else the record's.
    (Nodes behind it are a half-done upgrade: finished at that version first.)"""
    if cluster_version is not None:
        return cluster_version
    v = P.parse(recorded)
    if v is None:
        raise InstallerError("cannot tell the cluster's Kubernetes version: no kubeadm-config ClusterConfiguration "
                             "answered and the cluster record has none",
                             hint="Check `kubectl -n kube-system get configmap kubeadm-config` on the first control "
                                  "plane. Nothing was changed")
    return v


def half_done(cluster_version, node_state, host_packages=None):
    """Names of the nodes still behind the control plane's version (kubelet older, a kube package older, or left
    cordoned by an earlier upgrade): an upgrade that stopped part-way. [] when the cluster is consistent."""
    out = []
    for name, n in sorted(node_state.items()):
        pk = (host_packages or {}).get(name) or {}
        behind = n["kubelet"] is not None and n["kubelet"] < cluster_version
        behind = behind or any(v is not None and v < cluster_version for v in pk.values())
        if behind or n.get("ours"):
            out.append(name)
    return out


def skew_problems(cluster_version, node_state):
    """Nodes whose kubelet is newer than the API server (never allowed), or more than 3 minors older."""
    out = []
    for name, n in sorted(node_state.items()):
        k = n["kubelet"]
        if k is None:
            continue
        if k[:2] > cluster_version[:2] or (k[:2] == cluster_version[:2] and k > cluster_version):
            out.append("%s: kubelet %s is newer than the API server %s" % (name, P.text(k), P.text(cluster_version)))
    return out
