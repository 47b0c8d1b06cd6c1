"""remove-node: refusals (serving host, last control plane, etcd quorum), the steps and their state checks,
the etcd member found by name, the record shrinking."""

import json
import os

import pytest

from installer import removenode
from installer.changes import Callback, Command
from installer.cli import main, parse
from installer.context import Context, Options
from installer.errors import InstallerError
from installer.inventory import from_flags
from installer.output import Output
from installer.runner import Runner

from .conftest import make_bundle


def _ctx(bundle, cps="10.0.0.11,10.0.0.14,10.0.0.15", workers="10.0.0.12"):
    ctx = Context(bundle, from_flags(cps, workers), Options())
    ctx.recorded_names = {"10.0.0.11": "cp1", "10.0.0.14": "cp2", "10.0.0.15": "cp3", "10.0.0.12": "w1"}
    return ctx


def test_parse_remove_node_and_its_plan():
    a = parse(["remove-node", "w1", "--drain-timeout", "60", "-y"])
    assert (a.command, a.plan, a.node, a.drain_timeout, a.yes) == ("remove-node", False, "w1", 60, True)
    a = parse(["plan", "remove-node", "w1"])
    assert (a.command, a.plan, a.node) == ("remove-node", True, "w1")


def test_refuses_the_serving_host_the_last_control_plane_and_a_lost_quorum(bundle):
    ctx = _ctx(bundle)
    cp1, cp2, cp3 = ctx.inventory.control_planes
    assert removenode.find(ctx, "cp2") is cp2 and removenode.find(ctx, "10.0.0.12").address == "10.0.0.12"
    with pytest.raises(InstallerError) as e:
        removenode.find(ctx, "nope")
    assert "no node 'nope'" in str(e.value) and "cp1 (10.0.0.11)" in e.value.hint
    assert "is the serving host" in removenode.refusals(ctx, cp1, set())[0]
    assert removenode.refusals(ctx, cp3, {cp3.label}) == []  # a dead member of three: two answer, quorum 2
    lost = removenode.refusals(ctx, cp3, {cp3.label, cp2.label})
    assert lost and "etcd has 3 members of which 1 answer" in lost[0]
    assert removenode.operator(ctx, cp1, set()) is cp2
    single = _ctx(bundle, cps="10.0.0.11")
    single.serve_host = single.inventory.workers[0]  # not the serving host, still the last control plane
    assert "is the last control plane" in removenode.refusals(single, single.inventory.control_planes[0], set())[0]


def test_steps_check_their_state_and_the_member_is_found_by_name(bundle):
    ctx = _ctx(bundle)
    steps = removenode.node_steps(ctx, "cp3", True, 120)
    assert [s.describe() for s in steps] == ["cordon cp3", "drain cp3 (timeout 120 s)", "remove the etcd member cp3"]
    assert all(isinstance(s, Command) and s.unless for s in steps[:2]) and isinstance(steps[2], Callback)
    assert "--timeout=120s" in steps[1].cmd and '"unschedulable": true' in steps[0].unless
    assert [s.describe() for s in removenode.node_steps(ctx, "w1", False, 300)] == ["cordon w1",
                                                                                     "drain w1 (timeout 300 s)"]
    listed = json.dumps({"members": [{"name": "cp1", "ID": 255}, {"name": "cp3", "ID": 4096}]})
    assert removenode.member_id(listed, "cp3") == "1000" and removenode.member_id(listed, "cp9") is None


def _record(b, root):
    data = {"state": "installed", "bundle": {"name": "k8s"}, "options": {}, "history": [],
            "inventory": {"hosts": [{"address": "127.0.0.1", "role": "control_plane", "nodeName": "cp1"},
                                    {"address": "10.0.0.12", "role": "worker", "nodeName": "w1"}]}}
    with open(os.path.join(b.root, "cluster.json"), "w") as f:
        json.dump(data, f)
    return data


def test_cli_refuses_removing_the_serving_host_before_any_change(tmp_path, capsys):
    b = make_bundle(str(tmp_path / "b"))
    root = tmp_path / "root"
    root.mkdir()
    _record(b, root)
    assert main(["remove-node", "cp1", "-y", "--bundle", b.root, "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "remove-node cp1 refused: 127.0.0.1 is the serving host" in err and "Nothing was changed" in err
    assert main(["remove-node", "w9", "-y", "--bundle", b.root, "--root", str(root)]) == 1
    assert "there is no node 'w9'" in capsys.readouterr().err


def test_the_record_drops_the_removed_node(tmp_path, monkeypatch):
    b = make_bundle(str(tmp_path / "b"))
    root = tmp_path / "root"
    root.mkdir()
    data = _record(b, root)
    from installer import record as rec
    runner = Runner(b, rec.inventory_from(data, "REC"), Options(), Output(root=str(root), quiet=True),
                    root=str(root), skip_verify=True, local_addrs={"127.0.0.1"}, previous_record=data)
    monkeypatch.setattr(runner, "_answers", lambda host: True)
    written = []
    monkeypatch.setattr(runner, "write_record", lambda r, quiet=False: written.append(json.loads(r.text())))
    monkeypatch.setattr(runner, "execute", lambda op, before_changes=None: before_changes() or {"cp1": ["x"]})
    runner.remove_node("w1", 300)
    assert [h["address"] for h in written[-1]["inventory"]["hosts"]] == ["127.0.0.1"]
    assert written[-1]["history"][-1]["operation"] == "remove-node w1"
    assert written[-1]["history"][-1]["result"] == "ok"
    assert runner.ctx.remove_operator.address == "127.0.0.1" and runner.ctx.remove_target.address == "10.0.0.12"


FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "kubectl")


def _fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


def test_disruption_budgets_are_matched_against_the_pods_on_that_node():
    """kubectl get pdb -A / get pods -A JSON: only budgets at 0 allowed disruptions whose selector (matchLabels,
    matchExpressions, {} = the whole namespace, none = nothing) covers a pod the drain evicts from THAT node
    (DaemonSet, static and finished pods are not evicted) block it."""
    pdbs, pods = _fixture("pdb-all-namespaces.json"), _fixture("pods-all-namespaces.json")
    assert removenode.pdb_blockers(pdbs, pods, "node3") == [
        ("db/pg", ["db/pg-primary-0"]), ("web/api", ["web/api-5f8d7c9b6-kq2lm"]),
        ("batch/everything", ["batch/etl-5c7f9-abcde"])]
    assert removenode.pdb_blockers(pdbs, pods, "node2") == [("cache/redis", ["cache/redis-0"])]
    assert removenode.pdb_blockers(pdbs, pods, "node1") == [("kube-system/coredns",
                                                             ["kube-system/coredns-76f75df574-abcde"])]
    assert removenode.pdb_blockers(pdbs, pods, "node9") == []
    assert [b for b, _ in removenode.pdb_blockers(pdbs)] == [  # without pods: every budget at 0 expecting pods
        "db/pg", "web/api", "kube-system/coredns", "cache/redis", "batch/everything"]
    with pytest.raises(InstallerError) as e:
        removenode.pdb_blockers("not json", pods, "node3")
    assert "kubectl get pdb did not answer JSON" in e.value.message
    assert [p.name for p in removenode.remove_node_phases()][0] == "drain_blockers"


def test_selector_semantics():
    m = removenode.selector_matches
    assert m({}, {"a": "1"}) and not m(None, {"a": "1"})
    assert m({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}) and not m({"matchLabels": {"a": "1"}}, {"a": "2"})
    expr = {"matchExpressions": [{"key": "t", "operator": "NotIn", "values": ["x"]},
                                 {"key": "e", "operator": "Exists"}]}
    assert m(expr, {"e": ""}) and m(expr, {"e": "", "t": "y"}) and not m(expr, {"e": "", "t": "x"})
    assert not m(expr, {"t": "y"})


class _Answers:
    """A connection to the operator control plane answering kubectl with the recorded JSON fixtures."""

    def __init__(self, pdbs_ok=True):
        self.calls = []
        self.pdbs_ok = pdbs_ok

    def run(self, cmd, check=True, timeout=None, input=None):
        from installer.ssh import Result
        self.calls.append(cmd)
        if " get pdb " in cmd:
            return Result(cmd, 0 if self.pdbs_ok else 1, _fixture("pdb-all-namespaces.json") if self.pdbs_ok else "",
                          "" if self.pdbs_ok else "the server doesn't have a resource type \"pdb\"")
        if " get pods " in cmd:
            return Result(cmd, 0, _fixture("pods-all-namespaces.json"), "")
        raise AssertionError("unexpected command %s" % cmd)


def _drain_ctx(bundle, name="node3", **kw):
    ctx = Context(bundle, from_flags("10.0.0.11", "10.0.0.13"), Options())
    ctx.recorded_names = {"10.0.0.11": "node1", "10.0.0.13": name}
    ctx.remove_operator, ctx.remove_target = ctx.inventory.control_planes[0], ctx.inventory.workers[0]
    ctx.drain_timeout = 300
    conn = _Answers(**kw)
    ctx.connections = {ctx.remove_operator.label: conn}
    return ctx, conn


def test_drain_blockers_refuse_before_any_change_unless_ignored(bundle):
    ctx, conn = _drain_ctx(bundle)
    with pytest.raises(InstallerError) as e:
        removenode.DrainBlockers().check(ctx)
    msg = str(e.value)
    assert "remove-node node3 refused" in msg and "db/pg (allows no disruption; covers db/pg-primary-0)" in msg
    assert "web/api" in msg and "batch/everything" in msg and "web/front" not in msg and "redis" not in msg
    assert "Nothing was changed" in e.value.hint and "--ignore-pdb" in e.value.hint
    assert all(" get " in c for c in conn.calls) and "--field-selector spec.nodeName=node3" in conn.calls[1]
    ctx.dry_run = True  # plan: listed, and said that remove-node would refuse
    [(_, text)] = removenode.DrainBlockers().check(ctx)
    assert "blocking the drain of node3: db/pg" in text and "refuses" in text
    ctx.dry_run, ctx.ignore_pdb = False, True
    [(_, text)] = removenode.DrainBlockers().check(ctx)
    assert text.startswith("note: --ignore-pdb") and "db/pg" in text
    drain = removenode.node_steps(ctx, "node3", False, 300)[1]
    assert drain.cmd.endswith(" --disable-eviction")
    ctx.ignore_pdb = False
    assert "--disable-eviction" not in removenode.node_steps(ctx, "node3", False, 300)[1].cmd
    quiet, _ = _drain_ctx(bundle, name="node9")  # nothing of a budget at 0 on that node: no word, no refusal
    assert removenode.DrainBlockers().check(quiet) == []
    unknown, _ = _drain_ctx(bundle, pdbs_ok=False)  # cannot tell: said, not refused
    [(_, text)] = removenode.DrainBlockers().check(unknown)
    assert text.startswith("note: could not list the PodDisruptionBudgets") and "node3" in text


def test_parse_ignore_pdb():
    assert parse(["remove-node", "w1"]).ignore_pdb is False
    assert parse(["remove-node", "w1", "--ignore-pdb"]).ignore_pdb is True
    assert parse(["remove-node", "w1", "--force"]).ignore_pdb is True
    assert parse(["plan", "remove-node", "w1", "--ignore-pdb"]).ignore_pdb is True
