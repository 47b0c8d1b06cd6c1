"""Host preparation files: sysctl, modules-load, /etc/hosts block, fstab without swap, chrony.conf."""

import re

SYSCTL_FILE = "/etc/sysctl.d/99-airgap-kubernetes.conf"
MODULES_FILE = "/etc/modules-load.d/airgap-kubernetes.conf"
SYSCTL = (
    ("net.bridge.bridge-nf-call-iptables", "1"),
    ("net.bridge.bridge-nf-call-ip6tables", "1"),
    ("net.ipv4.ip_forward", "1"),
)
MODULES = ("overlay", "br_netfilter")
BEGIN = "# BEGIN airgap-installer"
END = "# END airgap-installer"


def sysctl_conf(settings=SYSCTL):
    return "# Written by airgap-installer (Kubernetes networking).\n" + "".join(
        "%s = %s\n" % (k, v) for k, v in settings)


def modules_load(modules=MODULES):
    return "# Written by airgap-installer (container runtime and kube-proxy).\n" + "".join(m + "\n" for m in modules)


def hosts_file(current, entries):
    """/etc/hosts with a managed block of `entries` [(address, name), ...]; the rest is kept as is."""
    current = current or "127.0.0.1   localhost localhost.localdomain\n::1         localhost localhost.localdomain\n"
    block = [BEGIN] + ["%-15s %s" % (addr, name) for addr, name in entries] + [END]
    lines = current.splitlines()
    if BEGIN in lines and END in lines and lines.index(BEGIN) < lines.index(END):
        i, j = lines.index(BEGIN), lines.index(END)
        lines = lines[:i] + block + lines[j + 1:]
    else:
        lines = lines + block
    return "\n".join(lines) + "\n"


_SWAP_RE = re.compile(r"^\s*[^#\s]+\s+\S+\s+swap\s")


def fstab_without_swap(current):
    """Comment out every active swap line (the seed's 'disable swap in /etc/fstab')."""
    out = []
    for line in (current or "").splitlines():
        if _SWAP_RE.match(line):
            out.append("#airgap-installer# " + line)
        else:
            out.append(line)
    return "\n".join(out) + ("\n" if out else "")


def has_swap_line(fstab):
    return any(_SWAP_RE.match(ln) for ln in (fstab or "").splitlines())


def chrony_conf(servers=(), serve_networks=(), local_stratum=None):
    """chrony.conf: the first host serves its clock to the cluster, the others follow it."""
    lines = ["# Written by airgap-installer."]
    for s in servers:
        lines.append("server %s iburst" % s)
    lines += ["driftfile /var/lib/chrony/drift", "makestep 1.0 3", "rtcsync", "logdir /var/log/chrony"]
    if local_stratum:
        lines.append("local stratum %d" % local_stratum)
    for net in serve_networks:
        lines.append("allow %s" % net)
    return "\n".join(lines) + "\n"
