"""add-node: the installed bundle only, the new hosts only (existing ones learn their names), one token per
operation, workers joined in parallel, a failure resets only the new hosts, the record grows on success."""

import json
import os

import pytest

from installer import addnode
from installer import record as rec
from installer.changes import WriteFile
from installer.cli import main, parse
from installer.context import Options
from installer.errors import InstallerError
from installer.inventory import Host, Inventory
from installer.output import Output
from installer.phases import install_phases
from installer.phases.join import JoinControlPlanes, JoinWorkers, delete_token, operation_token
from installer.runner import Runner
from installer.ssh import Result

from .conftest import el9_facts, make_bundle, make_ctx


def _record_data(b, hosts=(("10.0.0.11", "control_plane", "cp1"), ("10.0.0.12", "worker", "w1"))):
    return {"state": "installed", "bundle": {"name": "k8s", "sha256": rec.bundle_sha256(b.root), "dir": b.root},
            "inventory": {"hosts": [{"address": a, "role": r, "nodeName": n} for a, r, n in hosts]},
            "options": {}, "history": [{"operation": "install", "result": "ok"}]}


def _new(*addrs, role="worker"):
    return Inventory([Host(a, role) for a in addrs], "test", needs_control_plane=False)


def test_plan_add_node_parses_as_the_dry_run_of_add_node():
    a = parse(["plan", "add-node", "--workers", "10.0.0.13,10.0.0.14", "--skip-unreachable", "w1"])
    assert (a.command, a.plan, a.workers, a.skip_unreachable) == ("add-node", True, "10.0.0.13,10.0.0.14", "w1")
    a = parse(["add-node", "--control-plane", "10.0.0.15"])
    assert (a.command, a.plan, a.control_plane) == ("add-node", False, "10.0.0.15")


def test_refuses_another_bundle_and_hosts_already_in_the_cluster(tmp_path):
    b = make_bundle(str(tmp_path / "b"))
    data = _record_data(b)
    addnode.check_bundle_matches(data, "REC", b.root)  # the installed one
    other = make_bundle(str(tmp_path / "other"), k8s="1.31.1")
    with pytest.raises(InstallerError) as e:
        addnode.check_bundle_matches(data, "REC", other.root)
    assert "is not the one installed on the cluster" in str(e.value) and "REC" in str(e.value)
    with pytest.raises(InstallerError) as e:
        addnode.merge(data, "REC", _new("10.0.0.12"))
    assert "10.0.0.12 is already in the cluster" in str(e.value)
    dup = _new("10.0.0.13")
    dup.hosts[0].name = "w1"
    with pytest.raises(InstallerError) as e:
        addnode.merge(data, "REC", dup)
    assert "the node name w1 is already used by 10.0.0.12" in str(e.value)
    merged, labels = addnode.merge(data, "REC", _new("10.0.0.13", "10.0.0.14"))
    assert [h.address for h in merged.hosts] == ["10.0.0.11", "10.0.0.12", "10.0.0.13", "10.0.0.14"]
    assert labels == ["10.0.0.13", "10.0.0.14"]


def test_cli_refuses_without_record_or_with_another_bundle(tmp_path, capsys):
    b = make_bundle(str(tmp_path / "b"))
    root = tmp_path / "root"
    root.mkdir()
    args = ["add-node", "--workers", "10.0.0.13", "--bundle", b.root, "--root", str(root), "--skip-bundle-check"]
    assert main(args) == 1
    assert "add-node needs the cluster record" in capsys.readouterr().err
    data = _record_data(b)
    data["bundle"]["sha256"] = "0" * 64
    with open(os.path.join(b.root, "cluster.json"), "w") as f:
        json.dump(data, f)
    assert main(args) == 1
    assert "is not the one installed on the cluster" in capsys.readouterr().err


def _day2_ctx(bundle):
    ctx = make_ctx(bundle, workers="10.0.0.12,10.0.0.13,10.0.0.14")
    ctx.new_hosts = {"10.0.0.13", "10.0.0.14"}
    return ctx


def test_node_phases_run_on_the_new_hosts_only(bundle):
    ctx = _day2_ctx(bundle)
    phases = addnode.add_node_phases()
    by_name = {}
    for p in phases:
        by_name.setdefault(p.name, []).append(sorted(h.address for h in p.hosts(ctx)))
    new = ["10.0.0.13", "10.0.0.14"]
    assert by_name["preflight"] == [new]
    for name in ("media_repo", "host_prep", "runtime", "packages"):
        assert by_name[name] == [new], name
    assert by_name["join"] == [[], new]  # control planes (none new), then the workers
    assert by_name["cluster_hosts"] == [["10.0.0.11", "10.0.0.12"]]
    assert "kubeadm_init" not in by_name and "cni" not in by_name and "registry" not in by_name
    # the install's own phase list keeps every phase, joins split by role
    names = [p.name for p in install_phases()]
    assert names.count("join") == 2
    assert not JoinControlPlanes().parallel and JoinWorkers().parallel


def test_existing_hosts_only_learn_the_new_names(bundle):
    ctx = _day2_ctx(bundle)
    phase = [p for p in addnode.add_node_phases() if p.name == "cluster_hosts"][0]
    worker = ctx.inventory.hosts[1]
    f = el9_facts(hostname="node2", swap_active=True, files={"/etc/hosts": "127.0.0.1 localhost\n"})
    changes = phase.plan(ctx, worker, f)
    assert [c.describe() for c in changes] == ["write /etc/hosts (cluster host names)"]
    assert "10.0.0.14" in changes[0].content  # swap on: not this phase's business
    # the serving host (first control plane) also lets the new hosts ask it for the time
    serve = ctx.serve_host
    descr = [c.describe() for c in phase.plan(ctx, serve, el9_facts(hostname="node1"))]
    assert "write /etc/hosts (cluster host names)" in descr
    assert any(d.startswith("write /etc/chrony.conf") for d in descr) and "restart service chronyd" in descr
    assert not [d for d in descr if "chrony" not in d and "hosts" not in d]
    assert all(isinstance(c, WriteFile) or c.describe() == "restart service chronyd"
               for c in phase.plan(ctx, serve, el9_facts(hostname="node1")))


class TokenConn:
    def __init__(self):
        self.calls = []

    def check(self, cmd, what=None, timeout=None):
        self.calls.append(cmd)
        return Result(cmd, 0, "abcdef.0123456789abcdef\n", "")

    def run(self, cmd, check=True, timeout=None):
        self.calls.append(cmd)
        return Result(cmd, 0, "", "")


def test_one_short_lived_token_per_operation_deleted_at_the_end(bundle):
    ctx = _day2_ctx(bundle)
    conn = TokenConn()
    ctx.connections[ctx.first_cp.label] = conn
    assert operation_token(ctx, conn) == operation_token(ctx, conn) == "abcdef.0123456789abcdef"
    delete_token(ctx)
    delete_token(ctx)  # the second cleanup finds nothing to delete
    assert conn.calls == ["kubeadm token create --ttl 30m", "kubeadm token delete abcdef"]


def _runner(tmp_path, new=("10.0.0.13",)):
    b = make_bundle(str(tmp_path / "b"))
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    data = _record_data(b, hosts=(("127.0.0.1", "control_plane", "cp1"), ("10.0.0.12", "worker", "w1")))
    merged, labels = addnode.merge(data, "REC", _new(*new))
    r = Runner(b, merged, Options(), Output(root=str(root), quiet=True), root=str(root), skip_verify=True,
               local_addrs={"127.0.0.1"}, previous_record=data)
    return r, labels, data


def test_failed_add_node_resets_only_the_new_host_and_keeps_the_record(tmp_path, monkeypatch):
    runner, labels, data = _runner(tmp_path)
    resets = []
    monkeypatch.setattr(runner, "reset_new_hosts", lambda lb: resets.append(list(lb)))
    monkeypatch.setattr(runner, "write_record", lambda record, quiet=False: written.append(
        json.loads(record.text())))
    written = []

    def execute(op, before_changes=None):
        assert op.name == "add-node" and not op.dry_run
        before_changes()
        raise InstallerError("kubeadm join failed", phase="join")

    monkeypatch.setattr(runner, "execute", execute)
    with pytest.raises(InstallerError) as e:
        runner.add_node(labels)
    assert resets == [["10.0.0.13"]]
    assert "The new host(s) were reset; the cluster is as before" in str(e.value)
    assert [h["address"] for h in written[-1]["inventory"]["hosts"]] == ["127.0.0.1", "10.0.0.12"]
    assert written[-1]["history"][-1]["result"].startswith("failed (new hosts reset)")
    # success: the record lists the new host, the history says what was added
    monkeypatch.setattr(runner, "execute", lambda op, before_changes=None: before_changes() or {"10.0.0.13": ["x"]})
    runner.add_node(labels)
    assert [h["address"] for h in written[-1]["inventory"]["hosts"]] == ["127.0.0.1", "10.0.0.12", "10.0.0.13"]
    assert written[-1]["history"][-1]["operation"] == "add-node 10.0.0.13"
    assert written[-1]["history"][-1]["result"] == "ok" and written[-1]["state"] == "installed"


def test_skip_unreachable_refuses_hosts_the_operation_needs(tmp_path):
    runner, labels, _ = _runner(tmp_path)
    runner.ctx.skipped = {"10.0.0.13"}
    with pytest.raises(InstallerError) as e:
        runner.add_node(labels)
    assert "--skip-unreachable 10.0.0.13: add-node needs that host" in str(e.value)


def test_skipped_hosts_are_not_contacted(tmp_path, monkeypatch):
    runner, labels, _ = _runner(tmp_path)
    runner.ctx.skipped = {"10.0.0.12"}
    contacted = []
    monkeypatch.setattr(runner, "each", lambda hosts, func, parallel=True: contacted.extend(
        h.label for h in hosts) or {})
    runner.connect()
    assert "10.0.0.12" not in contacted and "10.0.0.13" in contacted
    assert [h.label for h in runner.ctx.reachable_hosts] == ["127.0.0.1", "10.0.0.13"]


def test_install_with_the_cluster_plus_new_hosts_adds_them(tmp_path, monkeypatch, capsys):
    b = make_bundle(str(tmp_path / "b"))
    root = tmp_path / "root"
    root.mkdir()
    with open(os.path.join(b.root, "cluster.json"), "w") as f:
        json.dump(_record_data(b, hosts=(("127.0.0.1", "control_plane", "cp1"),)), f)
    called = []
    monkeypatch.setattr(Runner, "add_node", lambda self, labels, dry_run=False: called.append((labels, dry_run)))
    monkeypatch.setattr(Runner, "install", lambda self: called.append("install"))
    base = ["--bundle", b.root, "--root", str(root), "--skip-bundle-check", "--control-plane", "127.0.0.1"]
    assert main(["install"] + base + ["--workers", "10.0.0.13"]) == 0
    assert main(["plan"] + base + ["--workers", "10.0.0.13"]) == 0
    assert called == [(["10.0.0.13"], False), (["10.0.0.13"], True)]
    assert "adding them (as ./install.py add-node does)" in capsys.readouterr().out
    del called[:]
    assert main(["install"] + base) == 0  # the same cluster: an ordinary (re-)install
    assert called == ["install"]


def test_verify_ignores_pods_on_skipped_nodes():
    from installer.phases.verify import pod_problems
    pods = {"items": [{"metadata": {"name": "kube-proxy-a"}, "spec": {"nodeName": "node2"},
                       "status": {"phase": "Unknown"}},
                      {"metadata": {"name": "kube-proxy-b"}, "spec": {"nodeName": "node3"},
                       "status": {"phase": "Running"}}]}
    assert pod_problems(pods) == ["kube-proxy-a is Unknown"]
    assert pod_problems(pods, ["node2"]) == []


def test_workers_joining_at_once_share_one_token(bundle):
    import threading
    import time as _time

    ctx = _day2_ctx(bundle)

    class Slow(TokenConn):
        def check(self, cmd, what=None, timeout=None):
            _time.sleep(0.05)  # a slow kubeadm: the other threads arrive while the token is being made
            return TokenConn.check(self, cmd, what, timeout)

    conn = Slow()
    got = []
    threads = [threading.Thread(target=lambda: got.append(operation_token(ctx, conn))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert got == ["abcdef.0123456789abcdef"] * 8 and conn.calls == ["kubeadm token create --ttl 30m"]


def test_preflight_checks_the_new_hosts_reach_repo_registry_and_api(bundle):
    ctx = _day2_ctx(bundle)
    probes = []

    class Probe(TokenConn):
        def __init__(self, blocked):
            TokenConn.__init__(self)
            self.blocked = blocked

        def run(self, cmd, check=True, timeout=None):
            probes.append(cmd)
            return Result(cmd, 1 if self.blocked in cmd else 0, "", "")

    ctx.connections = {"10.0.0.13": Probe("/6443"), "10.0.0.14": Probe("nothing")}
    pre = addnode.NewHostsPreflight()
    with pytest.raises(InstallerError) as e:
        pre.check_all(ctx, ctx.facts)
    assert "10.0.0.13 cannot reach the Kubernetes API at 10.0.0.11:6443" in str(e.value)
    assert "10.0.0.14" not in str(e.value) and "Nothing was changed" in str(e.value)
    assert "timeout 5 bash -c 'exec 3<>/dev/tcp/10.0.0.11/8089'" in probes[0]
    assert len(probes) == 6  # three targets from each new host, none from the existing ones
