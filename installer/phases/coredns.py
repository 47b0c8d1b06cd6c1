"""cluster DNS: CoreDNS forwards to --upstream-dns, or, on hosts without a nameserver, not at all.

kubeadm's Corefile forwards to /etc/resolv.conf; air-gapped hosts often have no nameserver there and CoreDNS
then fails. Nothing changes when every host has one and no --upstream-dns is given."""

import hashlib

from installer import constants as C
from installer.changes import Command, WriteFile
from installer.phases.base import Phase
from installer.constants import KUBECTL
from installer.render import coredns

CONFIG = C.KUBE_DIR + "/coredns.yaml"
APPLIED = C.KUBE_DIR + "/coredns.applied"  # sha256 of the ConfigMap last applied successfully


def describe(dns):
    if dns["mode"] == coredns.MODE_UPSTREAM:
        return "CoreDNS forwards names outside the cluster to %s" % ", ".join(dns["upstreams"])
    if dns["mode"] == coredns.MODE_NONE:
        return "CoreDNS answers cluster names only (no forward plugin)"
    return "CoreDNS forwards names outside the cluster to the nameservers in /etc/resolv.conf"


class CoreDNS(Phase):
    name = "coredns"
    title = "cluster DNS (CoreDNS)"

    def hosts(self, ctx):
        return [ctx.first_cp]

    def watched_files(self, ctx, host):
        return [CONFIG, APPLIED]

    def plan(self, ctx, host, facts):
        dns = ctx.dns
        if dns["mode"] == coredns.MODE_RESOLV and not facts.has_file(APPLIED):
            return []  # kubeadm's own Corefile is right
        text = coredns.configmap(coredns.corefile(dns["mode"], dns["upstreams"]))
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if facts.file(CONFIG) == text and facts.file(APPLIED) == digest + "\n":
            return []
        # The marker is written only after apply and restart succeeded: an interrupted run does both again.
        return [WriteFile(CONFIG, text, mode=0o600),
                Command("%s apply -f %s && %s -n kube-system rollout restart deployment coredns && echo %s > %s"
                        % (KUBECTL, CONFIG, KUBECTL, digest, APPLIED), title=describe(dns), timeout=300)]
