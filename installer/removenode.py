"""remove-node NAME: take a node out of the installed cluster.

Steps, from a control plane that stays (the "operator"): cordon, drain (with a timeout), for a control plane
its etcd member removed (found by name in the member list, so this works when the host is dead), the host
reset when it is reachable, the Node object deleted. Every step first checks its target state (`unless`), so
a re-run resumes where a failed one stopped, and `plan remove-node` shows only what is left to do.
Refused before anything changes: the serving host, the last control plane, and a removal that would leave
etcd without quorum.
"""

from installer import operations
from installer.changes import Callback, Command
from installer.constants import KUBECTL
from installer.errors import InstallerError
from installer.inventory import Inventory
from installer.phases.base import Phase
from installer.record import ClusterRecord
from installer.ssh import SSH, quote

ETCD_CERTS = ("--endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt "
              "--cert=/etc/kubernetes/pki/etcd/server.crt --key=/etc/kubernetes/pki/etcd/server.key")
DEFAULT_DRAIN_TIMEOUT = 300


def find(ctx, name):
    """The host of the cluster called `name` (node name, inventory name, alias or address)."""
    hits = [h for h in ctx.nodes if name in (h.label, h.address, h.alias, h.name, ctx.recorded_names.get(h.address))]
    if not hits:
        known = ", ".join("%s (%s)" % (ctx.recorded_names.get(h.address) or h.label, h.address) for h in ctx.nodes)
        raise InstallerError("remove-node: there is no node %r in the cluster record" % name,
                             hint="The cluster's nodes: %s" % known)
    return hits[0]


def refusals(ctx, target, unreachable):
    """Why removing `target` must not be done (empty: it may). `unreachable`: labels of the hosts that are
    down (skipped or not answering)."""
    out = []
    if ctx.is_serve_host(target):
        out.append("%s is the serving host (it runs this installer, the repositories and the image registry "
                   "the other nodes use)" % target.label)
    cps = ctx.inventory.control_planes
    if target.is_control_plane:
        if len(cps) == 1:
            out.append("%s is the last control plane" % target.label)
        else:
            # removing a member is an etcd write: it needs a majority of the current members, the dead ones
            # (the target itself if it is down) count against it
            healthy = [h for h in cps if h.label not in unreachable]
            if len(healthy) < len(cps) // 2 + 1:
                out.append("etcd has %d members of which %d answer: removing %s needs %d (a quorum)"
                           % (len(cps), len(healthy), target.label, len(cps) // 2 + 1))
    return out


def operator(ctx, target, unreachable):
    """The control plane that runs the kubectl/etcd steps: the first one that stays and answers."""
    for h in ctx.inventory.control_planes:
        if h is not target and h.label not in unreachable:
            return h
    raise InstallerError("remove-node: no other control plane answers to run the removal from",
                         hint="Bring a control plane back, or run with the cluster's record on one")


def node_steps(ctx, name, is_cp, drain_timeout):
    """The operator's Commands before the host reset: cordon, drain (--ignore-pdb: deleting instead of
    evicting, so no budget holds it), etcd member remove."""
    get = "%s get nodes %s -o json" % (KUBECTL, quote(name))
    absent = "! %s 2>/dev/null | grep -q '\"name\": \"%s\"'" % (get, name)
    out = [Command("%s cordon %s" % (KUBECTL, quote(name)), title="cordon %s" % name,
                   unless="%s || %s | grep -q '\"unschedulable\": true'" % (absent, get)),
           Command("%s drain %s --ignore-daemonsets --delete-emptydir-data --timeout=%ds%s" % (
               KUBECTL, quote(name), drain_timeout, " --disable-eviction" if getattr(ctx, "ignore_pdb", False) else ""),
               title="drain %s (timeout %d s)" % (name, drain_timeout),
               unless=absent, timeout=drain_timeout + 60)]  # draining a drained node changes nothing
    if is_cp:
        out.append(Callback("remove the etcd member %s" % name, lambda conn, j: remove_member(ctx, conn, name)))
    return out


def etcdctl(ctx, operator_host, args):
    return "%s -n kube-system exec etcd-%s -- etcdctl %s %s" % (KUBECTL, ctx.node_name(operator_host), ETCD_CERTS,
                                                               args)


def member_id(member_list_json, name):
    """The hex ID of the etcd member called `name` in `etcdctl member list -w json` output, or None."""
    import json
    try:
        members = json.loads(member_list_json).get("members") or []
    except ValueError:
        raise InstallerError("etcdctl member list did not answer JSON: %r" % member_list_json[:200]) from None
    for m in members:
        if m.get("name") == name:
            mid = m.get("ID")
            return "%x" % mid if isinstance(mid, int) else str(mid)
    return None


def remove_member(ctx, conn, name):
    op = ctx.remove_operator
    res = conn.check(etcdctl(ctx, op, "member list -w json"), "listing the etcd members")
    mid = member_id(res.stdout, name)
    if mid is None:
        return False  # already gone (a re-run)
    conn.check(etcdctl(ctx, op, "member remove %s" % mid), "removing the etcd member %s" % name)
    return True


def member_present(ctx, conn, name):
    res = conn.run(etcdctl(ctx, ctx.remove_operator, "member list -w json"), check=False)
    return not res.ok or member_id(res.stdout, name) is not None


def _items(text, what):
    import json
    try:
        data = json.loads(text)
    except ValueError:
        raise InstallerError("kubectl get %s did not answer JSON: %r" % (what, (text or "")[:200])) from None
    return (data or {}).get("items") or []


def selector_matches(selector, labels):
    """A label selector (matchLabels, matchExpressions) against a pod's labels, as the API server does. A
    missing selector matches nothing; an empty one ({}) every pod of the namespace (policy/v1)."""
    if selector is None:
        return False
    labels = labels or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def evicted_pods(pods_json, node):
    """The pods a drain of `node` evicts (`kubectl get pods -A -o json`): on that node, not DaemonSet-owned
    (--ignore-daemonsets), not static (mirror pods), not finished (no budget applies to those)."""
    out = []
    for p in _items(pods_json, "pods"):
        meta, spec, status = p.get("metadata") or {}, p.get("spec") or {}, p.get("status") or {}
        if spec.get("nodeName") != node or status.get("phase") in ("Succeeded", "Failed"):
            continue
        if "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
            continue
        if any(o.get("kind") == "DaemonSet" for o in meta.get("ownerReferences") or []):
            continue
        out.append(p)
    return out


def pdb_blockers(pdb_list_json, pods_json=None, node=None):
    """[(namespace/budget, [namespace/pod on `node` it covers])] of the PodDisruptionBudgets that allow no
    disruption now and select a pod a drain of `node` evicts (pods_json None: every budget at 0, no pods)."""
    pods = evicted_pods(pods_json, node) if pods_json is not None else None
    out = []
    for i in _items(pdb_list_json, "pdb"):
        meta, status = i.get("metadata") or {}, i.get("status") or {}
        if status.get("disruptionsAllowed", 1) != 0:
            continue
        ns = meta.get("namespace")
        name = "%s/%s" % (ns, meta.get("name"))
        if pods is None:
            if status.get("expectedPods", 1) > 0:
                out.append((name, []))
            continue
        hit = ["%s/%s" % (ns, (p["metadata"] or {}).get("name")) for p in pods
               if p["metadata"].get("namespace") == ns
               and selector_matches((i.get("spec") or {}).get("selector"), p["metadata"].get("labels"))]
        if hit:
            out.append((name, hit))
    return out


class DrainBlockers(Phase):
    """A check, before anything changes: the PodDisruptionBudgets that allow no disruption and cover a pod on
    the node being drained (the node's pods' labels against each budget's selector). Listed in the plan;
    remove-node refuses them unless --ignore-pdb (then the drain deletes the pods instead of evicting them)."""

    name = "drain_blockers"
    title = "disruption budgets"
    kind = "check"

    def hosts(self, ctx):
        return [ctx.remove_operator]

    def check(self, ctx):
        conn = ctx.connections[ctx.remove_operator.label]
        node = ctx.node_name(ctx.remove_target)
        pdbs = conn.run("%s get pdb -A -o json" % KUBECTL, check=False, timeout=120)
        pods = conn.run("%s get pods -A -o json --field-selector spec.nodeName=%s" % (KUBECTL, quote(node)),
                        check=False, timeout=120)
        if not (pdbs.ok and pods.ok):
            return [(None, "note: could not list the PodDisruptionBudgets and the pods of %s (%s): the drain "
                           "may wait on a budget (at most --drain-timeout %d s)" % (
                               node, (pdbs.stderr or pods.stderr or "").strip()[-200:], ctx.drain_timeout))]
        try:
            blockers = pdb_blockers(pdbs.stdout, pods.stdout, node)
        except InstallerError as e:
            return [(None, "note: %s: the drain may wait on a budget" % e.message)]
        if not blockers:
            return []
        text = "; ".join("%s (allows no disruption; covers %s)" % (b, ", ".join(p)) for b, p in blockers)
        if getattr(ctx, "ignore_pdb", False):
            return [(None, "note: --ignore-pdb: PodDisruptionBudget(s) %s are bypassed: the drain of %s deletes "
                           "their pods instead of evicting them" % (text, node))]
        if getattr(ctx, "dry_run", False):
            return [(None, "PodDisruptionBudget(s) blocking the drain of %s: %s; remove-node refuses until they "
                           "allow a disruption (or with --ignore-pdb)" % (node, text))]
        raise InstallerError(
            "remove-node %s refused: draining it would wait on PodDisruptionBudget(s) %s" % (node, text),
            phase=self.name, hint="Nothing was changed. Scale up or move those workloads (or relax the budgets) and "
                                  "run remove-node again, or pass --ignore-pdb to delete the pods anyway")


class RemoveFromCluster(Phase):
    """cordon, drain, etcd member (on the operator control plane)."""

    name = "remove_node"
    title = "cordon, drain, etcd member"
    journaled = False

    def hosts(self, ctx):
        return [ctx.remove_operator]

    def plan(self, ctx, host, facts):
        t = ctx.remove_target
        return node_steps(ctx, ctx.node_name(t), t.is_control_plane, ctx.drain_timeout)

    def dry_run(self, ctx, host, facts, conn=None):
        out = []
        for c in self.plan(ctx, host, facts):
            if isinstance(c, Callback):
                if conn is None or member_present(ctx, conn, ctx.node_name(ctx.remove_target)):
                    out.append(c.describe())
            elif not (conn is not None and c.unless and conn.run(c.unless, check=False).ok):
                out.append(c.describe())
        return out


class ResetRemoved(Phase):
    """The removed host, when it answers: reset as ./install.py reset does (its journal undone)."""

    name = "reset_removed"
    title = "reset the removed host"
    journaled = False

    def hosts(self, ctx):
        return [ctx.remove_target]

    def dry_run(self, ctx, host, facts, conn=None):
        j = ctx.journals.get(host.label)
        if j is None or not (j.data["phases"] or j.data["files"] or j.data["moved"]):
            return []
        return ["reset the host (kubeadm reset, undo the installer's changes)"]

    def run(self, ctx, host, conn, facts, journal, report=None):
        from installer.reset import reset_host
        if self.dry_run(ctx, host, facts) == []:
            return []
        reset_host(conn, journal, report or (lambda text: None))
        return ["reset the host"]


class DeleteNode(Phase):
    name = "delete_node"
    title = "delete the Node object"
    journaled = False

    def hosts(self, ctx):
        return [ctx.remove_operator]

    def plan(self, ctx, host, facts):
        name = ctx.node_name(ctx.remove_target)
        return [Command("%s delete node %s" % (KUBECTL, quote(name)), title="delete node %s" % name,
                        unless="! %s get nodes %s -o json 2>/dev/null | grep -q '\"name\": \"%s\"'" % (
                            KUBECTL, quote(name), name))]


def remove_node_phases():
    return [DrainBlockers(), RemoveFromCluster(), ResetRemoved(), DeleteNode()]


def run(runner, name, drain_timeout, dry_run=False, ignore_pdb=False):
    """Take node `name` out of the cluster (installer.removenode); the record drops it on success."""
    ctx = runner.ctx
    ctx.ignore_pdb = ignore_pdb
    ctx.dry_run = dry_run
    target = find(ctx, name)
    if target.label in ctx.skipped:
        ctx.skipped.discard(target.label)  # the target is handled below: reset only if it answers
    # the target may be dead: it does not stop the operation, it is just not reset
    unreachable = set(ctx.skipped)
    if not target.local and not runner._answers(target):
        unreachable.add(target.label)
        ctx.skipped.add(target.label)
        runner.out.say("%s does not answer: it is removed from the cluster but not reset" % target.label)
    problems = refusals(ctx, target, unreachable)
    if problems:
        raise InstallerError("remove-node %s refused: %s" % (name, "; ".join(problems)),
                             hint="Nothing was changed")
    ctx.remove_target = target
    ctx.remove_operator = operator(ctx, target, unreachable)
    ctx.drain_timeout = drain_timeout
    op = operations.remove_node(dry_run)
    if dry_run:
        changed = runner.execute(op)
        total = sum(len(v) for v in changed.values())
        runner.out.say("plan remove-node: %d change(s)" % total if total else "plan remove-node: no changes")
        return total
    record = ClusterRecord(runner.previous_record)

    def failed(e):
        e.hint = "%s. Every step checks its state: run the same remove-node again to resume" % (
            (e.hint or "Fix the cause").rstrip("."))
        return "failed: %s" % e.message

    changed = runner.execute_recorded(
        op, record, lambda r: r.start("remove-node %s" % name, ctx, operation_id=runner.operation_id),
        on_failure=failed)
    ctx.inventory = Inventory([h for h in ctx.inventory.hosts if h is not target], source=ctx.inventory.source)
    record.set_inventory(ctx)
    runner.finish_record(record)
    total = sum(len(v) for v in changed.values())
    runner.out.say("remove-node: %s removed; %d change(s)" % (name, total))
    return total


def answers(runner, host):
    try:
        SSH(host, runner.out.logger(host.label)).check("true", "checking the connection")
        return True
    except InstallerError:
        return False
