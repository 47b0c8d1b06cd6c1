"""The upgrade's path and preflight, before any change: the path from the cluster's state (refusing a downgrade,
a skipped minor, a half-done upgrade this bundle cannot finish), then nodes Ready, version skew, every etcd
member's health, certificates, disk space (/var on every node, the staging room on the serving host), each
step's images in the bundle, and the disruption budgets that would hold a drain (installer.upgrade.checks)."""

from installer.errors import InstallerError
from installer.phases.base import Phase
from installer.upgrade import path as P
from installer.upgrade import state as S
from installer.upgrade.checks import etcd_problems, pdb_problems, staging_space

MIN_FREE_MB = 1024  # /var on every node: the new packages and images


def todo_by_step(steps, cluster_version, node_state, host_packages, names):
    """{step version: set of host labels that still need it}. `names`: {label: node name}."""
    out = {}
    for v in steps:
        need = set()
        for label, name in names.items():
            n = node_state.get(name) or {}
            pk = host_packages.get(label) or {}
            behind = n.get("kubelet") is None or n["kubelet"] < v or n.get("ours")
            behind = behind or any(pk.get(p) is None or pk[p] < v for p in S.KUBE_PACKAGES)
            if behind:
                need.add(label)
        out[v] = need
    return out


def compute(ctx, recorded_version):
    """Fill ctx.upgrade_* from the cluster (first control plane) and each node's packages; raise the refusals."""
    cp = ctx.connections[ctx.first_cp.label]
    cluster_version, node_state = S.read_cluster(cp)
    current = S.current_version(cluster_version, node_state, recorded_version)
    chain = P.chain(ctx.bundle.data)
    hosts = [h for h in ctx.nodes if h.label not in ctx.skipped]
    names = dict((h.label, ctx.node_name(h)) for h in hosts)
    packages = dict((h.label, S.read_packages(ctx.connections[h.label])) for h in hosts)
    behind = S.half_done(current, node_state, dict((names[k], v) for k, v in packages.items()))
    steps = []
    if behind:
        if current not in chain:
            raise InstallerError("the cluster is half-way through an upgrade to %s (not finished on %s), and this "
                                 "bundle does not carry %s" % (P.text(current), ", ".join(behind), P.text(current)),
                                 hint="Finish it with the bundle of Kubernetes %s (./install.py upgrade from it), then "
                                      "run this one. Nothing was changed" % P.text(current))
        steps.append(current)
    steps += P.steps(current, ctx.bundle.data)
    ctx.upgrade_current = current
    ctx.upgrade_cluster_version = cluster_version
    ctx.upgrade_nodes = node_state
    ctx.upgrade_behind = behind
    ctx.upgrade_steps = steps
    ctx.upgrade_todo = todo_by_step(steps, cluster_version or current, node_state, packages, names)
    return steps


def problems(ctx, facts_of, run_cp):
    """The preflight refusals (a list of sentences) and notes. `run_cp(cmd)` runs on a control plane (Result)."""
    bad, notes = [], []
    by_name = dict((ctx.node_name(h), h) for h in ctx.nodes)
    for name, n in sorted(ctx.upgrade_nodes.items()):
        h = by_name.get(name)
        if h is not None and h.label in ctx.skipped:
            notes.append("%s is skipped (--skip-unreachable): it stays at kubelet %s" % (
                name, P.text(n["kubelet"]) if n["kubelet"] else "?"))
            continue
        if not n["ready"]:
            bad.append("node %s is not Ready" % name)
    cluster = ctx.upgrade_cluster_version or ctx.upgrade_current
    bad += S.skew_problems(cluster, ctx.upgrade_nodes)
    for h in ctx.nodes:
        f = facts_of(h)
        if f is not None and f.disk_free_mb and f.disk_free_mb < MIN_FREE_MB:
            bad.append("%s has %d MB free on /var (at least %d needed for the new packages and images)"
                       % (h.label, f.disk_free_mb, MIN_FREE_MB))
    refs = set(i.get("ref") for i in ctx.bundle.images)
    for v in ctx.upgrade_steps:
        want = P.hop_images(ctx.bundle.data, v)
        missing = [i for i in want if i not in refs]
        if not want:
            bad.append("the bundle has no kube-apiserver/kube-proxy images of v%s" % P.text(v))
        if missing:
            bad.append("the bundle lacks the images of v%s: %s" % (P.text(v), ", ".join(missing)))
    bad += etcd_problems(run_cp, ctx.node_name(ctx.first_cp), [ctx.node_name(h) for h in ctx.inventory.control_planes])
    res = run_cp("kubeadm certs check-expiration")
    if res.ok and "<invalid>" in res.stdout:
        expired = [ln.split()[0] for ln in res.stdout.splitlines() if "<invalid>" in ln]
        bad.append("certificates expired: %s (kubeadm certs renew all, then restart the control plane)"
                   % ", ".join(expired))
    elif not res.ok:
        bad.append("kubeadm certs check-expiration failed: %s" % (res.stderr or res.stdout).strip()[-300:])
    pdb_bad, pdb_notes = pdb_problems(ctx, run_cp)
    bad += pdb_bad
    notes += pdb_notes
    bad += staging_space(ctx)
    return bad, notes


def describe_path(ctx):
    if not ctx.upgrade_steps:
        return "the cluster is at Kubernetes %s, the bundle's version: nothing to upgrade" % P.text(ctx.upgrade_current)
    later = [P.text(v) for v in ctx.upgrade_steps if v != ctx.upgrade_current]
    text = "upgrade path: %s -> %s" % (P.text(ctx.upgrade_current), " -> ".join(later)) if later else \
        "finishing the upgrade to %s" % P.text(ctx.upgrade_current)
    if ctx.upgrade_behind:
        text += " (resuming: %s not yet at %s)" % (", ".join(ctx.upgrade_behind), P.text(ctx.upgrade_current))
    return text


class UpgradePreflight(Phase):
    """A check: the path (computed in prepare, before facts: a refusal changes nothing) and the preflight."""

    name = "upgrade_preflight"
    title = "upgrade preflight"
    kind = "check"

    def __init__(self, recorded_version, extend):
        self.recorded_version = recorded_version
        self.extend = extend  # called with the path known: adds the step phases to the operation

    def hosts(self, ctx):
        return [ctx.first_cp]

    def prepare(self, ctx):
        compute(ctx, self.recorded_version)
        self.extend(ctx)

    def check(self, ctx):
        conn = ctx.connections[ctx.first_cp.label]
        out = [(None, describe_path(ctx))]
        if not ctx.upgrade_steps:
            return out
        bad, notes = problems(ctx, lambda h: ctx.facts.get(h.label),
                              lambda cmd: conn.run(cmd, check=False, timeout=120))
        if bad:
            raise InstallerError("upgrade refused: %s" % "; ".join(bad),
                                 hint="Fix these (or pass --skip-unreachable NAME for a node that is down) and run "
                                      "./install.py upgrade again. Nothing was changed")
        return out + [(None, "note: %s" % n) for n in notes]
