"""The upgrade preflight's cluster-wide checks that ask more than one thing: every etcd member healthy (not only
the one the first control plane talks to), the PodDisruptionBudgets that would hold a drain we must do (per node,
with installer.removenode's pod/selector matching), and the room to stage the new repository on the serving
host. Each returns refusals (sentences); none changes anything."""

import json

from installer.constants import KUBECTL, SERVE_ROOT
from installer.errors import InstallerError
from installer.ssh import quote

STAGE_MARGIN_MB = 512  # beyond the new repository's size on the serving host (repodata rewrites, logs)
MEMBER_LIST = "member list -w json"
CLUSTER_HEALTH = "endpoint health --cluster -w json"


def etcdctl(operator_name, args):
    from installer.removenode import ETCD_CERTS
    return "%s -n kube-system exec %s -- etcdctl %s %s" % (KUBECTL, quote("etcd-" + operator_name), ETCD_CERTS, args)


def _json(text):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def etcd_health(members_json, health_json, cp_names=()):
    """Refusals from `etcdctl member list -w json` and `etcdctl endpoint health --cluster -w json` (which
    etcdctl prints, with a non-zero exit, also when a member is unhealthy): every member must answer healthy on
    one of its client URLs, and every control plane must be a member (kubeadm names members after the nodes)."""
    members = (_json(members_json) or {}).get("members") if isinstance(_json(members_json), dict) else None
    if not members:
        return ["etcd did not list its members: %s" % ((members_json or "").strip()[-200:] or "no answer")]
    health = _json(health_json)
    if not isinstance(health, list):
        return ["etcd endpoint health --cluster did not answer: %s" % ((health_json or "").strip()[-200:]
                                                                        or "no answer")]
    healthy = set(h.get("endpoint") for h in health if h.get("health") is True)
    errors = dict((h.get("endpoint"), h.get("error") or "unhealthy") for h in health if h.get("health") is not True)
    out = []
    for m in members:
        name = m.get("name") or "(unnamed, id %s)" % m.get("ID")
        urls = m.get("clientURLs") or []
        if not urls:
            out.append("etcd member %s has not started (no client URL)" % name)
        elif not healthy.intersection(urls):
            out.append("etcd member %s is not healthy (%s: %s)" % (
                name, ", ".join(urls), "; ".join(str(errors[u]) for u in urls if u in errors) or "no answer"))
    names = set(m.get("name") for m in members)
    out += ["control plane %s has no etcd member" % n for n in cp_names if n not in names]
    return out


def etcd_problems(run_cp, operator_name, cp_names):
    members = run_cp(etcdctl(operator_name, MEMBER_LIST))
    if not members.ok:
        return ["etcd is not healthy: its member list did not answer: %s"
                % ((members.stdout + members.stderr).strip()[-300:] or "no answer")]
    health = run_cp(etcdctl(operator_name, CLUSTER_HEALTH))
    return ["etcd is not healthy: %s" % p for p in etcd_health(members.stdout, health.stdout, cp_names)]


def describe_selector(selector):
    """A budget's selector as kubectl's -l syntax (what it picks); '{}' selects every pod of the namespace."""
    if selector is None:
        return "no selector"
    parts = ["%s=%s" % kv for kv in sorted((selector.get("matchLabels") or {}).items())]
    for e in selector.get("matchExpressions") or []:
        op, key, values = e.get("operator"), e.get("key"), ",".join(e.get("values") or [])
        if op in ("In", "NotIn"):
            parts.append("%s %s (%s)" % (key, op.lower(), values))
        else:
            parts.append(("!%s" if op == "DoesNotExist" else "%s") % key)
    return ",".join(parts) or "{} (every pod of the namespace)"


def drained_nodes(ctx):
    """Node names the upgrade drains, in inventory order (those with a step left, not skipped)."""
    todo = set()
    for labels in ctx.upgrade_todo.values():
        todo.update(labels)
    return [ctx.node_name(h) for h in ctx.nodes if h.label in todo and h.label not in ctx.skipped]


def pdb_problems(ctx, run_cp):
    """(refusals, notes): each budget that allows no disruption and covers a pod on a node we must drain, named
    with its selector and that node. With --ignore-pdb (ctx.ignore_pdb) they are notes: the drains then delete
    the pods instead of evicting them."""
    from installer.removenode import pdb_blockers
    ignore = getattr(ctx, "ignore_pdb", False)
    pdbs = run_cp("%s get pdb -A -o json" % KUBECTL)
    pods = run_cp("%s get pods -A -o json" % KUBECTL)
    if not (pdbs.ok and pods.ok):
        text = "could not list the PodDisruptionBudgets and pods (%s), so whether a drain would wait on one is " \
               "unknown" % ((pdbs.stderr or pods.stderr or "no answer").strip()[-200:])
        return ([], [text + "; --ignore-pdb: going on"]) if ignore else ([text + " (--ignore-pdb goes on anyway)"], [])
    try:
        selectors = dict(("%s/%s" % ((i.get("metadata") or {}).get("namespace"), (i.get("metadata") or {}).get(
            "name")), (i.get("spec") or {}).get("selector")) for i in json.loads(pdbs.stdout).get("items") or [])
        found = [(node, b, covered) for node in drained_nodes(ctx)
                 for b, covered in pdb_blockers(pdbs.stdout, pods.stdout, node)]
    except (ValueError, AttributeError, InstallerError) as e:
        text = "the PodDisruptionBudgets could not be read (%s)" % getattr(e, "message", e)
        return ([], [text]) if ignore else ([text + " (--ignore-pdb goes on anyway)"], [])
    lines = ["PodDisruptionBudget %s (selector %s) allows no disruption and covers %s on node %s, which the "
             "upgrade must drain" % (b, describe_selector(selectors.get(b)), ", ".join(covered), node)
             for node, b, covered in found]
    if ignore:
        return [], ["--ignore-pdb: %s: its pods are deleted instead of evicted" % ln for ln in lines]
    if lines:
        lines[-1] += " (scale the workload up or relax the budget, or pass --ignore-pdb)"
    return lines, []


def staging_space(ctx):
    """The serving host needs room for the new repository beside the old one (StageRepo's copy), unless it is
    staged already."""
    from installer.upgrade.phases import staged_dir
    serve = ctx.serve_host
    if serve.label in ctx.skipped or serve.label not in ctx.connections:
        return []
    d = staged_dir(ctx)
    cmd = ("test -e {d}/.complete && echo staged || {{ du -sk {src} | cut -f1; "
           "df -Pk $(test -d {root} && echo {root} || echo /opt) | awk 'NR==2 {{print $4}}'; }}").format(
        d=quote(d), src=quote(ctx.bundle.path("repo")), root=quote(SERVE_ROOT))
    res = ctx.connections[serve.label].run(cmd, check=False, timeout=300)
    words = res.stdout.split()
    if words == ["staged"]:
        return []
    if len(words) != 2 or not all(w.isdigit() for w in words):
        return ["%s: could not measure the new repository and the free space on %s: %s"
                % (serve.label, SERVE_ROOT, (res.stdout + res.stderr).strip()[-200:] or "no answer")]
    size_mb, free_mb = int(words[0]) // 1024, int(words[1]) // 1024
    need = size_mb + STAGE_MARGIN_MB
    if free_mb < need:
        return ["%s has %d MB free on %s, staging the new repository needs %d MB (%d MB + %d MB margin)"
                % (serve.label, free_mb, SERVE_ROOT, need, size_mb, STAGE_MARGIN_MB)]
    return []
