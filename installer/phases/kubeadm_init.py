"""kubeadm init on the first control-plane host, and root's kubeconfig as the seed had it."""

from installer import constants as C
from installer.changes import Callback, Command, WriteFile
from installer.constants import ADMIN_CONF, ROOT_KUBECONFIG
from installer.errors import InstallerError
from installer.kube import is_initialized
from installer.phases.base import Phase
from installer.render import kubeadm as kadm

CONFIG = C.KUBE_DIR + "/kubeadm.yaml"


def kubeadm_config(ctx, host):
    b = ctx.bundle
    image_repo = b.kube_image_repository()
    if b.runtime == "docker":
        image_repo = "%s/%s" % (ctx.registry_path, image_repo)  # docker cannot mirror registry.k8s.io
    return kadm.init_config(
        b.k8s_version, host.address, ctx.node_name(host), runtime=b.runtime, pod_subnet=ctx.pod_subnet,
        cni=b.cni, image_repository=image_repo, control_plane_endpoint=ctx.api_endpoint)


def missing_images(listed, bundle_refs, prefix=None):
    """Images in kubeadm's list (its output lines) that the bundle does not carry. With docker the list is
    behind the local registry (`prefix`/registry.k8s.io/...); the bundle names the upstream references."""
    have = set(bundle_refs)
    out = []
    for line in listed:
        ref = line.strip()
        if "/" not in ref or " " in ref:
            continue  # not an image reference (kubeadm warnings go to stderr, but be safe)
        if prefix and ref.startswith(prefix + "/"):
            ref = ref[len(prefix) + 1:]
        if ref not in have:
            out.append(ref)
    return out


def image_check(ctx):
    """kubeadm init pulls what the installed kubeadm lists, not what the builder's table said: compare before
    init, so a difference stops here with the fix instead of as an image pull timeout inside kubeadm."""
    b = ctx.bundle
    prefix = ctx.registry_path if b.runtime == "docker" else None

    def check(conn, journal):
        res = conn.check("kubeadm config images list --config %s" % CONFIG, "listing kubeadm's images", timeout=120)
        missing = missing_images(res.stdout.splitlines(), [i["ref"] for i in b.images], prefix)
        if missing:
            raise InstallerError(
                "kubeadm %s needs %s, which the bundle %s does not carry (it has: %s)" % (
                    b.k8s_version, ", ".join(missing), b.name, ", ".join(sorted(i["ref"] for i in b.images))),
                hint="kubeadm init was not run. Add the missing image(s) under spec.images in the manifest, "
                     "rebuild with `bundler build`, unpack the new bundle and run ./install.py again: completed "
                     "work is not redone")
        return False

    return Callback("check that the bundle carries every image kubeadm %s needs" % b.k8s_version, check)


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
            out.append(image_check(ctx))
            upload = " --upload-certs" if len(ctx.inventory.control_planes) > 1 else ""
            out.append(Command("kubeadm init --config %s%s" % (CONFIG, upload),
                               title="kubeadm init (Kubernetes %s)" % ctx.bundle.k8s_version,
                               undo="kubeadm reset -f", timeout=1200))
        if not initialized or facts.file(ROOT_KUBECONFIG) != facts.file(ADMIN_CONF):
            out.append(Command("mkdir -p /root/.kube && cp -f %s %s && chmod 600 %s" % (
                ADMIN_CONF, ROOT_KUBECONFIG, ROOT_KUBECONFIG), title="kubeconfig for root in %s" % ROOT_KUBECONFIG,
                unless="cmp -s %s %s" % (ADMIN_CONF, ROOT_KUBECONFIG)))
        return out
