"""CNI: apply the bundled network add-on manifest (calico or flannel), patched for the pod subnet."""

import hashlib
import re

from installer import constants as C
from installer.constants import KUBECTL
from installer.changes import Command, WriteFile
from installer.phases.base import Phase
from installer.render.kubeadm import DEFAULT_POD_SUBNETS

MANIFEST = C.KUBE_DIR + "/cni.yaml"
APPLIED = C.KUBE_DIR + "/cni.applied"  # sha256 of the manifest last applied successfully


def patch_manifest(text, cni, pod_subnet):
    """Make the add-on use `pod_subnet` when it is not the add-on's default."""
    if cni == "calico" and pod_subnet != DEFAULT_POD_SUBNETS["calico"]:
        text, n = re.subn(r'#\s*- name: CALICO_IPV4POOL_CIDR\n(\s*)#\s*value: "[^"]*"',
                          lambda m: '- name: CALICO_IPV4POOL_CIDR\n%svalue: "%s"' % (m.group(1), pod_subnet), text)
    if cni == "flannel" and pod_subnet != DEFAULT_POD_SUBNETS["flannel"]:
        text = text.replace('"Network": "10.244.0.0/16"', '"Network": "%s"' % pod_subnet)
    return text


class CNI(Phase):
    name = "cni"
    title = "network add-on"

    def hosts(self, ctx):
        return [ctx.first_cp]

    def watched_files(self, ctx, host):
        return [MANIFEST, APPLIED]

    def should_run(self, ctx, host, facts):
        return ctx.bundle.cni != "none" and ctx.bundle.cni_manifest() is not None

    def plan(self, ctx, host, facts):
        with open(ctx.bundle.cni_manifest()) as f:
            text = patch_manifest(f.read(), ctx.bundle.cni, ctx.pod_subnet)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if facts.file(MANIFEST) == text and facts.file(APPLIED) == digest + "\n":
            return []
        # The marker is written only after kubectl apply succeeded: an interrupted run applies again.
        return [WriteFile(MANIFEST, text),
                Command("%s apply -f %s && echo %s > %s" % (KUBECTL, MANIFEST, digest, APPLIED),
                        title="kubectl apply the %s manifest" % ctx.bundle.cni, timeout=300)]
