"""preflight (a check phase, first): refuse, before anything changes, a host the bundle cannot install on."""

import ipaddress

from installer.constants import CP_PORTS, SERVE_PORTS, WORKER_PORTS
from installer.errors import InstallerError
from installer.kube import existing_kubernetes
from installer.phases.base import Phase
from installer.render import coredns

OUR_SERVICES = ("airgap-repo", "airgap-registry", "airgap-registry-push", "kubelet")
MAX_SKEW_WARN = 5
MAX_SKEW_ERROR = 24 * 3600


class Preflight(Phase):
    name = "preflight"
    title = "preflight checks"
    kind = "check"

    def hosts(self, ctx):
        return ctx.all_hosts

    def watched_files(self, ctx, host):
        return [coredns.RESOLV_CONF]

    def check(self, ctx):
        """Every problem on every host in one error; otherwise the notes, per host then for the cluster."""
        notes = self.check_all(ctx, ctx.facts)
        return [(label if label != "cluster" else None, "note: %s" % n)
                for label, ns in sorted(notes.items()) for n in ns]

    def check_host(self, ctx, host, facts):
        """(errors, notes) for one host, from facts only."""
        errors, notes = [], []
        b = ctx.bundle
        if facts.os_tag != b.os:
            errors.append("the bundle is for %s but the host runs %s" % (
                b.os, facts.os_pretty or facts.os_id or "an unknown OS"))
        if facts.arch != b.arch:
            errors.append("the bundle is for %s but the host is %s" % (b.arch, facts.arch))
        in_cluster = host in ctx.nodes
        if in_cluster:
            if host.is_control_plane:
                if facts.cpus < 2:
                    errors.append("a control plane needs 2 CPUs, the host has %d" % facts.cpus)
                if facts.mem_mb < 1700:
                    errors.append("a control plane needs 1700 MiB of memory, the host has %d" % facts.mem_mb)
            elif facts.mem_mb < 900:
                errors.append("a worker needs 900 MiB of memory, the host has %d" % facts.mem_mb)
            free = facts.disk_free_mb
            if free < 2048:
                errors.append("/var has %d MiB free, at least 2048 are needed" % free)
            elif free < 10240:
                notes.append("/var has only %d MiB free (10 GiB recommended)" % free)
            kube = existing_kubernetes(facts)
            journal = ctx.journals.get(host.label)
            ours = journal is not None and (journal.phase_done("kubeadm_init") or journal.phase_done("join"))
            if kube and not ours and not ctx.options.force:
                errors.append("Kubernetes is already set up here (%s); pass --force to install over it, or run "
                              "'kubeadm reset' first" % kube)
        busy = self.busy_ports(ctx, host, facts)
        if busy:
            errors.append("port(s) %s are already in use" % ", ".join(str(p) for p in busy))
        if facts.swap_active:
            notes.append("swap is on (it will be turned off)")
        notes.append("SELinux is %s%s" % (facts.selinux, " (will be set to permissive)" if
                                          ctx.options.selinux == "permissive" and facts.selinux == "enforcing"
                                          else ""))
        if facts.service("firewalld").get("active"):
            notes.append("firewalld is running (%s)" % ("ports will be opened" if ctx.options.firewalld == "on"
                                                        else "it will be stopped"))
        if in_cluster:
            try:
                net = ipaddress.ip_network(ctx.pod_subnet, strict=False)
                for a in facts.addresses:
                    try:
                        if ipaddress.ip_address(a) in net and not a.startswith("127."):
                            errors.append("the pod subnet %s contains the host address %s; pass --pod-subnet"
                                          % (ctx.pod_subnet, a))
                    except ValueError:
                        pass
            except ValueError:
                errors.append("--pod-subnet %r is not a network" % ctx.pod_subnet)
        if ctx.is_serve_host(host) and ctx.media is not None:
            major = ctx.media.get("major")
            if major is not None and major != b.el_major:
                errors.append("the OS media %s (%s) is EL%d but the bundle is for %s" % (
                    ctx.media["path"], ctx.media.get("label"), major, b.os))
        return errors, notes

    def busy_ports(self, ctx, host, facts):
        wanted = set()
        if host in ctx.nodes:
            wanted.update(CP_PORTS if host.is_control_plane else WORKER_PORTS)
        if ctx.is_serve_host(host):
            wanted.update(SERVE_PORTS)
            if ctx.own_registry is not None:  # --registry: the bundled registry's ports are not used
                wanted.difference_update(SERVE_PORTS[1:])
        listening = set(facts.listening_ports)
        ours = any(facts.service(s).get("active") for s in OUR_SERVICES)
        if ours:
            return []  # a re-run: the ports are ours
        return sorted(wanted & listening)

    def check_cluster(self, ctx, facts_by_label):
        errors, notes = [], []
        names = {}
        for h in ctx.nodes:
            f = facts_by_label.get(h.label)
            if f is None:
                continue
            name = ctx.node_name(h)
            if name in names:
                errors.append("hosts %s and %s have the same host name %r; give each a unique 'name' in the "
                              "inventory" % (names[name], h.label, name))
            names[name] = h.label
            if name in ("localhost", "localhost.localdomain"):
                errors.append("host %s is called %r; give it a real 'name' in the inventory" % (h.label, name))
        cps = ctx.inventory.control_planes
        if len(cps) > 1 and not ctx.options.control_plane_endpoint:
            notes.append("%d control planes share the API endpoint %s (the first one's address): if that host is "
                         "down, the others cannot be reached through it. For high availability put a load "
                         "balancer or virtual IP in front of them and pass --control-plane-endpoint HOST:PORT"
                         % (len(cps), ctx.api_endpoint))
        notes += dns_notes(ctx.dns)
        times = [(h.label, facts_by_label[h.label].time) for h in ctx.all_hosts
                 if facts_by_label.get(h.label) and facts_by_label[h.label].time]
        if len(times) > 1:
            lo = min(times, key=lambda t: t[1])
            hi = max(times, key=lambda t: t[1])
            skew = hi[1] - lo[1]
            if skew > MAX_SKEW_ERROR and not ctx.options.force:
                errors.append("the clocks of %s and %s differ by %d s; set the time first (or pass --force)"
                              % (lo[0], hi[0], skew))
            elif skew > MAX_SKEW_WARN:
                notes.append("clock skew of %d s between %s and %s (chrony will step the clocks)"
                             % (skew, lo[0], hi[0]))
        return errors, notes

    def check_all(self, ctx, facts_by_label):
        """Raise one InstallerError listing every problem on every host; return notes per host."""
        problems = []
        all_notes = {}
        for h in self.hosts(ctx):
            f = facts_by_label.get(h.label)
            if f is None:
                continue
            errs, notes = self.check_host(ctx, h, f)
            all_notes[h.label] = notes
            problems += ["%s: %s" % (h.label, e) for e in errs]
        errs, notes = self.check_cluster(ctx, facts_by_label)
        problems += errs
        all_notes["cluster"] = notes
        if problems:
            raise InstallerError("preflight found %d problem(s): %s" % (len(problems), "; ".join(problems)),
                                 phase="preflight", hint="Nothing was changed on any host. Fix these and run "
                                                         "./install.py again")
        return all_notes


def dns_notes(dns):
    """What preflight says about cluster DNS (installer.render.coredns.decide)."""
    if dns["mode"] == coredns.MODE_UPSTREAM:
        return ["CoreDNS will forward names outside the cluster to %s (--upstream-dns)" % ", ".join(dns["upstreams"])]
    if dns["mode"] == coredns.MODE_NONE:
        return ["no usable nameserver in /etc/resolv.conf on %s: CoreDNS will answer cluster names only (its "
                "forward plugin is removed); pass --upstream-dns IP[,IP] to resolve other names through your "
                "nameservers" % ", ".join(dns["without"])]
    return []
