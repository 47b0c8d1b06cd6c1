"""helm on the control planes: the bundle ships it; placed in /usr/local/bin, where root's kubeconfig
(/root/.kube/config, written by the kubeadm init and join phases) makes it usable at once. Reset removes it."""

from installer.changes import PutFile
from installer.phases.base import Phase

HELM = "/usr/local/bin/helm"


def helm_file(bundle):
    f = bundle.file("helm")
    return f if f is not None and f.get("kind") == "binary" else None


class Helm(Phase):
    name = "helm"
    title = "helm on the control planes"

    def hosts(self, ctx):
        return list(ctx.inventory.control_planes)

    def should_run(self, ctx, host, facts):
        return helm_file(ctx.bundle) is not None

    def plan(self, ctx, host, facts):
        f = helm_file(ctx.bundle)
        if facts.bin_sha.get(HELM) == f.get("sha256"):
            return []
        src = ctx.bundle.path(f["path"])
        return [PutFile(src, HELM, 0o755, f.get("sha256"),
                        title="install %s%s" % (HELM, " %s" % f["version"] if f.get("version") else ""))]
