"""Small Kubernetes helpers shared by phases (pure functions over facts)."""

from installer.constants import ADMIN_CONF, APISERVER_MANIFEST, KUBELET_CONF

KUBE_MARKERS = (ADMIN_CONF, KUBELET_CONF, APISERVER_MANIFEST)


def existing_kubernetes(facts):
    """A short description of the Kubernetes already on the host, or None."""
    found = [p for p in KUBE_MARKERS if facts.has_file(p)]
    if found:
        return "found %s" % ", ".join(found)
    if facts.service("kubelet").get("active"):
        return "kubelet is running"
    return None


def is_joined(facts):
    return facts.has_file(KUBELET_CONF)


def is_initialized(facts):
    return facts.has_file(ADMIN_CONF)
