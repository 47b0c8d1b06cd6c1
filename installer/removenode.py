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
    """The operator's Commands before the host reset: cordon, drain, etcd member remove."""
    get = "%s get nodes %s -o json" % (KUBECTL, quote(name))
    absent = "! %s 2>/dev/null | grep -q '\"name\": \"%s\"'" % (get, name)
    out = [Command("%s cordon %s" % (KUBECTL, quote(name)), title="cordon %s" % name,
                   unless="%s || %s | grep -q '\"unschedulable\": true'" % (absent, get)),
           Command("%s drain %s --ignore-daemonsets --delete-emptydir-data --timeout=%ds" % (
               KUBECTL, quote(name), drain_timeout), title="drain %s (timeout %d s)" % (name, drain_timeout),
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


def pdb_blockers(pdb_list_json):
    """PodDisruptionBudgets that allow no disruption now (`kubectl get pdb -A -o json`): a drain waits on them."""
    import json
    try:
        items = json.loads(pdb_list_json).get("items") or []
    except ValueError:
        return []
    return ["%s/%s" % (i["metadata"].get("namespace"), i["metadata"].get("name")) for i in items
            if (i.get("status") or {}).get("disruptionsAllowed", 1) == 0
            and (i.get("status") or {}).get("expectedPods", 1) > 0]


class DrainBlockers(Phase):
    """A check, before anything changes: the budgets a drain would wait on, listed (the drain still runs and
    gives up after --drain-timeout; a re-run resumes)."""

    name = "drain_blockers"
    title = "disruption budgets"
    kind = "check"

    def hosts(self, ctx):
        return [ctx.remove_operator]

    def check(self, ctx):
        conn = ctx.connections[ctx.remove_operator.label]
        res = conn.run("%s get pdb -A -o json" % KUBECTL, check=False)
        blockers = pdb_blockers(res.stdout) if res.ok else []
        if not blockers:
            return []
        return [(None, "note: PodDisruptionBudget(s) allowing no disruption now: %s; draining %s waits for them "
                       "(at most --drain-timeout %d s; then fix them and run remove-node again)" % (
                           ", ".join(blockers), ctx.node_name(ctx.remove_target), ctx.drain_timeout))]


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


def run(runner, name, drain_timeout, dry_run=False):
    """Take node `name` out of the cluster (installer.removenode); the record drops it on success."""
    ctx = runner.ctx
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
