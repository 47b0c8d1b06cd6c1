"""status (a check phase): each host's OS, the install phases done and service states, and the cluster's nodes.
Reads only. A host that does not answer (or is given to --skip-unreachable) is listed as such; without a record
on the serving host the in-cluster copy (ConfigMap kube-system/airgap-bundler-cluster) is shown."""

import os

from installer import pins
from installer import record as rec
from installer.errors import InstallerError
from installer.constants import KUBECTL
from installer.phases.base import Phase

SHOWN_SERVICES = ("containerd", "docker", "kubelet", "airgap-registry", "airgap-repo")


def record_line(r, source=None):
    last = (r.get("history") or [{}])[-1]
    return "cluster record%s: bundle %s %s (Kubernetes %s), state %s; last operation: %s %s (%s)" % (
        " (%s)" % source if source else "", (r.get("bundle") or {}).get("name"), (r.get("bundle") or {}).get("version"),
        r.get("kubernetes"), r.get("state"), last.get("operation"), last.get("started"), last.get("result"))


class Status(Phase):
    name = "status"
    title = "status"
    kind = "check"

    def hosts(self, ctx):
        return ctx.all_hosts

    def watched_files(self, ctx, host):
        return list(pins.VERSIONLOCK_CONFS)

    def check(self, ctx):
        from installer.phases import install_phases
        lines = []
        cps = [h for h in ctx.inventory.control_planes if h.label in ctx.connections]
        cp = ctx.connections[cps[0].label] if cps else None
        r = ctx.previous_record
        if r:
            lines.append((None, record_line(r)))
        elif cp is not None:
            r = rec.read_configmap(cp)
            if r:
                lines.append((None, record_line(r, "no record on the serving host; the in-cluster copy, ConfigMap "
                                                   "%s/%s" % (rec.CONFIGMAP_NAMESPACE, rec.CONFIGMAP_NAME))))
        names = [p.name for p in install_phases() if not p.is_check]
        pinned_by = pins_bundle(ctx.bundle, r)
        for h in ctx.all_hosts:
            if h.label not in ctx.connections:
                why = ctx.unreachable.get(h.label) or "skipped (--skip-unreachable)"
                lines.append((h.label, "not contacted: %s" % why))
                continue
            j = ctx.journals[h.label]
            f = ctx.facts[h.label]
            done = [p for p in names if j.phase_done(p)]
            states = ", ".join("%s=%s" % (s, "active" if f.service(s).get("active") else "inactive")
                               for s in SHOWN_SERVICES if f.service(s).get("exists"))
            lines.append((h.label, "%s %s; phases done: %s; %s" % (f.os_pretty, f.arch,
                                                                   ", ".join(done) or "none", states)))
            lines += [(h.label, line) for line in pin_report(pinned_by, f, r)]
        if cp is None:
            lines.append((None, "no control plane answers: the cluster's nodes are not shown"))
        else:
            res = cp.run("%s get nodes -o wide" % KUBECTL, check=False)
            if res.ok:
                lines.append((None, res.stdout.rstrip()))
        from installer.certs import warnings
        return lines + warnings(ctx)  # certificates below 90 days (openssl only: status runs nothing else)


def pins_bundle(bundle, record):
    """The bundle the pins are checked against: the cluster's (the record's) when status runs from another one
    still on disk. After an upgrade the old bundle's cri-tools/runtime versions are no longer the cluster's (the
    new kubeadm pulled a newer cri-tools): judged by the old bundle they would be reported as drift."""
    d = ((record or {}).get("bundle") or {}).get("dir")
    if not d or os.path.abspath(d) == bundle.root:
        return bundle
    try:
        from installer.bundle import Bundle
        return Bundle.load(d)
    except InstallerError:
        return bundle  # the recorded bundle is gone: this one is the best reference left


def pin_report(bundle, facts, record):
    """Version pins on one host: each pinned package's installed version against the cluster record / bundle,
    and whether versionlock backs the repo's exclude."""
    if bundle.install_mode == "binaries":
        return []
    lines, drifted = pins.drift_lines(bundle, facts, record)
    if not lines:
        return []
    lock = "versionlock entries" if pins.has_versionlock(facts) else "no versionlock plugin (repo exclude only)"
    head = "version pins: %s; %s" % ("%d drifted (%s)" % (len(drifted), ", ".join(drifted)) if drifted
                                     else "all ok", lock)
    return [head] + ["  " + line for line in lines]
