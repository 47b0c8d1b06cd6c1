"""Small Kubernetes helpers shared by phases (pure functions over facts)."""

KUBE_MARKERS = ("/etc/kubernetes/admin.conf", "/etc/kubernetes/kubelet.conf",
                "/etc/kubernetes/manifests/kube-apiserver.yaml")


def existing_kubernetes(facts):
    """A short description of the Kubernetes already on the host, or None."""
    found = [p for p in KUBE_MARKERS if facts.has_file(p)]
    if found:
        return "found %s" % ", ".join(found)
    if facts.service("kubelet").get("active"):
        return "kubelet is running"
    return None


def is_joined(facts):
    return facts.has_file("/etc/kubernetes/kubelet.conf")


def is_initialized(facts):
    return facts.has_file("/etc/kubernetes/admin.conf")
