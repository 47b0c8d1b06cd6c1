"""CoreDNS's Corefile as kubeadm writes it, with the one line air-gapped hosts need to change: `forward`.

kubeadm's Corefile forwards every name outside the cluster to the nameservers in /etc/resolv.conf. On a host
without any, CoreDNS fails ("no nameservers found") and cluster DNS with it. The installer then either
forwards to the nameservers the operator names (--upstream-dns) or drops the forward plugin, so CoreDNS
still answers cluster names (and says NXDOMAIN/SERVFAIL for the rest).
"""

import ipaddress

RESOLV_CONF = "/etc/resolv.conf"
MODE_RESOLV = "resolv.conf"   # kubeadm's default: forward to the nameservers of the node CoreDNS runs on
MODE_UPSTREAM = "upstream"    # forward to --upstream-dns
MODE_NONE = "none"            # no forward plugin: cluster names only


def nameservers(resolv_conf):
    """The `nameserver` addresses of a resolv.conf text (None or '' -> [])."""
    out = []
    for line in (resolv_conf or "").splitlines():
        parts = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            out.append(parts[1])
    return out


def usable(addresses):
    """Nameservers CoreDNS can forward to: valid, not loopback (a loopback resolver inside the CoreDNS pod is
    the pod itself: CoreDNS's loop detection stops it)."""
    out = []
    for a in addresses:
        try:
            if not ipaddress.ip_address(a.split("%")[0]).is_loopback:
                out.append(a)
        except ValueError:
            pass
    return out


def decide(upstream_dns, resolv_by_host):
    """{'mode', 'upstreams', 'without'}: how CoreDNS forwards, from --upstream-dns (a list, maybe empty) and
    each cluster host's /etc/resolv.conf ({label: text or None}). `without`: the hosts lacking a nameserver."""
    without = sorted(h for h, text in resolv_by_host.items() if not usable(nameservers(text)))
    if upstream_dns:
        return {"mode": MODE_UPSTREAM, "upstreams": list(upstream_dns), "without": without}
    if without:
        return {"mode": MODE_NONE, "upstreams": [], "without": without}
    return {"mode": MODE_RESOLV, "upstreams": [], "without": []}


def corefile(mode, upstreams=(), domain="cluster.local"):
    """kubeadm's Corefile (cmd/kubeadm/app/phases/addons/dns) with the forward plugin for `mode`."""
    if mode == MODE_UPSTREAM:
        forward = "    forward . %s {\n       max_concurrent 1000\n    }\n" % " ".join(upstreams)
    elif mode == MODE_RESOLV:
        forward = "    forward . %s {\n       max_concurrent 1000\n    }\n" % RESOLV_CONF
    else:
        forward = ""
    return (".:53 {\n"
            "    errors\n"
            "    health {\n       lameduck 5s\n    }\n"
            "    ready\n"
            "    kubernetes %s in-addr.arpa ip6.arpa {\n"
            "       pods insecure\n"
            "       fallthrough in-addr.arpa ip6.arpa\n"
            "       ttl 30\n"
            "    }\n"
            "    prometheus :9153\n"
            "%s"
            "    cache 30\n"
            "    loop\n"
            "    reload\n"
            "    loadbalance\n"
            "}\n") % (domain, forward)


def configmap(corefile_text):
    """The kube-system/coredns ConfigMap kubeadm created, with this Corefile (for kubectl apply)."""
    return ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: coredns\n  namespace: kube-system\n"
            "data:\n  Corefile: |\n%s" % "".join("    %s\n" % ln if ln else "\n"
                                                for ln in corefile_text.splitlines()))
