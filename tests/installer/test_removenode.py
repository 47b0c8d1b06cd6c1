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


def test_disruption_budgets_that_would_block_the_drain_are_listed():
    pdbs = {"items": [{"metadata": {"namespace": "db", "name": "pg"}, "status": {"disruptionsAllowed": 0,
                                                                                  "expectedPods": 3}},
                      {"metadata": {"namespace": "web", "name": "front"}, "status": {"disruptionsAllowed": 1}},
                      {"metadata": {"namespace": "x", "name": "empty"}, "status": {"disruptionsAllowed": 0,
                                                                                  "expectedPods": 0}}]}
    assert removenode.pdb_blockers(json.dumps(pdbs)) == ["db/pg"]
    assert removenode.pdb_blockers("not json") == []
    assert [p.name for p in removenode.remove_node_phases()][0] == "drain_blockers"
