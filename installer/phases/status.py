"""status (a check phase): each host's OS, the install phases done and service states, and the cluster's nodes.
Reads only."""

from installer.constants import KUBECTL
from installer.phases.base import Phase

SHOWN_SERVICES = ("containerd", "docker", "kubelet", "airgap-registry", "airgap-repo")


class Status(Phase):
    name = "status"
    title = "status"
    kind = "check"

    def hosts(self, ctx):
        return ctx.all_hosts

    def check(self, ctx):
        from installer.phases import install_phases
        lines = []
        r = ctx.previous_record
        if r:
            last = (r.get("history") or [{}])[-1]
            lines.append((None, "cluster record: bundle %s %s (Kubernetes %s), state %s; last operation: %s %s (%s)" % (
                (r.get("bundle") or {}).get("name"), (r.get("bundle") or {}).get("version"), r.get("kubernetes"),
                r.get("state"), last.get("operation"), last.get("started"), last.get("result"))))
        names = [p.name for p in install_phases() if not p.is_check]
        for h in ctx.all_hosts:
            j = ctx.journals[h.label]
            f = ctx.facts[h.label]
            done = [p for p in names if j.phase_done(p)]
            states = ", ".join("%s=%s" % (s, "active" if f.service(s).get("active") else "inactive")
                               for s in SHOWN_SERVICES if f.service(s).get("exists"))
            lines.append((h.label, "%s %s; phases done: %s; %s" % (f.os_pretty, f.arch,
                                                                   ", ".join(done) or "none", states)))
        cp = ctx.connections[ctx.first_cp.label]
        res = cp.run("%s get nodes -o wide" % KUBECTL, check=False)
        if res.ok:
            lines.append((None, res.stdout.rstrip()))
        from installer.certs import warnings
        return lines + warnings(ctx)  # certificates below 90 days (openssl only: status runs nothing else)
