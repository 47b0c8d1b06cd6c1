"""host preparation: /etc/hosts, hostname, swap, kernel modules, sysctl, time, SELinux, firewalld."""

import ipaddress

from installer.changes import Command, InstallPackages, Service, WriteFile
from installer.phases.base import Phase, firewall_change
from installer.phases.media_repo import enable_module_streams
from installer.render import system
from installer.ssh import quote

CHRONY_CONF = "/etc/chrony.conf"
SELINUX_CONF = "/etc/selinux/config"

CP_FW = ["6443/tcp", "2379-2380/tcp", "10250/tcp", "10257/tcp", "10259/tcp"]
WORKER_FW = ["10250/tcp", "30000-32767/tcp"]
CNI_FW = {"calico": ["179/tcp", "4789/udp", "5473/tcp"], "flannel": ["8472/udp"], "none": []}


def selinux_permissive(current):
    lines = []
    found = False
    for line in (current or "").splitlines():
        if line.strip().startswith("SELINUX="):
            lines.append("SELINUX=permissive")
            found = True
        else:
            lines.append(line)
    if not found:
        lines.append("SELINUX=permissive")
    return "\n".join(lines) + "\n"


class HostPrep(Phase):
    name = "host_prep"
    title = "host preparation"

    def hosts(self, ctx):
        return ctx.all_hosts

    def watched_files(self, ctx, host):
        return ["/etc/hosts", "/etc/fstab", system.SYSCTL_FILE, system.MODULES_FILE, CHRONY_CONF, SELINUX_CONF]

    def chrony(self, ctx, host):
        if ctx.is_serve_host(host):
            nets = sorted(set(str(ipaddress.ip_network(h.address + ("/32" if ":" not in h.address else "/128")))
                              for h in ctx.all_hosts if _is_ip(h.address)))
            return system.chrony_conf(servers=(), serve_networks=nets, local_stratum=10)
        return system.chrony_conf(servers=(ctx.serve_address,))

    def plan(self, ctx, host, facts):
        out = enable_module_streams(ctx, host, facts)  # before any package install (chrony below)
        in_cluster = host in ctx.nodes
        # /etc/hosts: every node (and the serving host) by name
        entries = []
        for h in ctx.all_hosts:
            if _is_ip(h.address):
                entries.append((h.address, ctx.node_name(h)))
        hosts = system.hosts_file(facts.file("/etc/hosts"), entries)
        if facts.file("/etc/hosts") != hosts:
            out.append(WriteFile("/etc/hosts", hosts, why="cluster host names"))
        if host.name and (facts.hostname or "").lower() != host.name:
            out.append(Command("hostnamectl set-hostname %s" % quote(host.name),
                               title="set the host name to %s" % host.name,
                               undo="hostnamectl set-hostname %s" % quote(facts.hostname or "localhost")))
        if in_cluster:
            if facts.swap_active:
                out.append(Command("swapoff -a", title="turn swap off now", undo="swapon -a"))
            fstab = facts.file("/etc/fstab")
            if system.has_swap_line(fstab):
                out.append(WriteFile("/etc/fstab", system.fstab_without_swap(fstab), why="swap off at boot"))
            if facts.file(system.MODULES_FILE) != system.modules_load():
                out.append(WriteFile(system.MODULES_FILE, system.modules_load()))
            for m in system.MODULES:
                if m not in facts.modules:
                    out.append(Command("modprobe %s" % m, title="load kernel module %s" % m))
            if facts.file(system.SYSCTL_FILE) != system.sysctl_conf():
                out.append(WriteFile(system.SYSCTL_FILE, system.sysctl_conf()))
                out.append(Command("sysctl -p %s" % system.SYSCTL_FILE, title="apply %s" % system.SYSCTL_FILE))
        # time: the serving host is the cluster's time source
        if not facts.rpm("chrony"):
            out.append(InstallPackages(["chrony"]))
        conf = self.chrony(ctx, host)
        if facts.file(CHRONY_CONF) != conf:
            out.append(WriteFile(CHRONY_CONF, conf, why="time from %s" % (
                "the local clock" if ctx.is_serve_host(host) else ctx.serve_address)))
            if facts.service("ntpd").get("active"):
                out.append(Command("systemctl disable --now ntpd", title="stop ntpd (chrony replaces it)",
                                   undo="systemctl enable --now ntpd"))
            out.append(Service("chronyd", restart=True))
        elif not facts.service("chronyd").get("active"):
            out.append(Service("chronyd"))
        if ctx.is_serve_host(host):
            out += firewall_change(facts, ["123/udp"], ctx.options.firewalld, "time server")
        tz = ctx.options.timezone
        if tz and facts.timezone != tz:
            out.append(Command("timedatectl set-timezone %s" % quote(tz), title="set the time zone to %s" % tz,
                               undo="timedatectl set-timezone %s" % quote(facts.timezone or "UTC")))
        # SELinux: enforcing stays enforcing unless the operator asked for permissive
        if ctx.options.selinux == "permissive" and in_cluster:
            if facts.selinux == "enforcing":
                out.append(Command("setenforce 0", title="SELinux permissive now", undo="setenforce 1"))
            cfg = facts.file(SELINUX_CONF)
            if cfg is not None and selinux_permissive(cfg) != cfg:
                out.append(WriteFile(SELINUX_CONF, selinux_permissive(cfg), why="SELinux permissive at boot"))
        # firewalld
        if in_cluster and facts.service("firewalld").get("active"):
            if ctx.options.firewalld == "off":
                out.append(Command("systemctl disable --now firewalld", title="stop and disable firewalld",
                                   undo="systemctl enable --now firewalld"))
            else:
                ports = (CP_FW if host.is_control_plane else WORKER_FW) + CNI_FW.get(ctx.bundle.cni, [])
                out += firewall_change(facts, ports, "on", "kubernetes")
        return out


def _is_ip(a):
    try:
        ipaddress.ip_address(a)
        return True
    except ValueError:
        return False
