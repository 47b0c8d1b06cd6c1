"""6. kubeadm init on the first control-plane host, and root's kubeconfig as the seed had it."""

from installer import context as C
from installer.changes import Command, WriteFile
from installer.kube import is_initialized
from installer.phases.base import Phase
from installer.render import kubeadm as kadm

CONFIG = C.KUBE_DIR + "/kubeadm.yaml"
ADMIN_CONF = "/etc/kubernetes/admin.conf"
ROOT_KUBECONFIG = "/root/.kube/config"


def kubeadm_config(ctx, host):
    b = ctx.bundle
    image_repo = b.kube_image_repository()
    if b.runtime == "docker":
        image_repo = "%s/%s" % (ctx.registry, image_repo)  # docker cannot mirror registry.k8s.io
    return kadm.init_config(
        b.k8s_version, host.address, ctx.node_name(host), runtime=b.runtime, pod_subnet=ctx.pod_subnet,
        cni=b.cni, image_repository=image_repo, control_plane_endpoint=ctx.api_endpoint)


class KubeadmInit(Phase):
    name = "kubeadm_init"
    title = "kubeadm init (first control plane)"

    def hosts(self, ctx):
        return [ctx.first_cp]

    def watched_files(self, ctx, host):
        return [CONFIG, ROOT_KUBECONFIG]

    def plan(self, ctx, host, facts):
        out = []
        cfg = kubeadm_config(ctx, host)
        initialized = is_initialized(facts)
        if facts.file(CONFIG) != cfg and not initialized:
            out.append(WriteFile(CONFIG, cfg, mode=0o600))
        if not initialized:
            upload = " --upload-certs" if len(ctx.inventory.control_planes) > 1 else ""
            out.append(Command("kubeadm init --config %s%s" % (CONFIG, upload),
                               title="kubeadm init (Kubernetes %s)" % ctx.bundle.k8s_version,
                               undo="kubeadm reset -f", timeout=1200))
        if not initialized or facts.file(ROOT_KUBECONFIG) != facts.file(ADMIN_CONF):
            out.append(Command("mkdir -p /root/.kube && cp -f %s %s && chmod 600 %s" % (
                ADMIN_CONF, ROOT_KUBECONFIG, ROOT_KUBECONFIG), title="kubeconfig for root in %s" % ROOT_KUBECONFIG,
                unless="cmp -s %s %s" % (ADMIN_CONF, ROOT_KUBECONFIG)))
        return out
