"""The cluster record (status/plan/reset without retyping hosts) and the per-command parsers."""

import json
import os

import pytest

from installer import record as rec
from installer.cli import build_parser, main, parse, resolve, split_command
from installer.context import Options
from installer.errors import InstallerError
from installer.inventory import from_flags
from installer.journal import Journal
from installer.output import Output
from installer.phases.base import Phase
from installer.runner import Runner
from installer.ssh import Local

from .conftest import make_bundle


def test_split_command():
    assert split_command(["reset", "-y"]) == ("reset", ["-y"])
    assert split_command(["-y", "reset"]) == ("reset", ["-y"])
    assert split_command(["--control-plane", "1.2.3.4"]) == ("install", ["--control-plane", "1.2.3.4"])
    # an option's value is not a command
    assert split_command(["--ssh-user", "plan", "status"]) == ("status", ["--ssh-user", "plan"])


def test_each_command_helps_with_its_own_options():
    helps = dict((c, build_parser(c).format_help()) for c in ("install", "plan", "status", "reset"))
    for c in ("install", "plan"):
        assert "--upstream-dns" in helps[c] and "--pod-subnet" in helps[c] and "--control-plane" in helps[c]
    assert "--pod-subnet" not in helps["status"] and "--media" not in helps["status"]
    assert "--control-plane" in helps["status"] and "cluster record" in helps["status"]
    assert "-y, --yes" in helps["reset"] and "--pod-subnet" not in helps["reset"]
    assert "usage: install.py status" in helps["status"]


def test_status_refuses_options_that_mean_nothing_to_it(capsys):
    with pytest.raises(SystemExit) as e:
        parse(["status", "--pod-subnet", "10.0.0.0/16"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "status does not take --pod-subnet: it only reads the hosts and changes nothing" in err
    with pytest.raises(SystemExit):
        parse(["status", "-y"])
    assert "status does not take -y" in capsys.readouterr().err


def test_reset_accepts_the_install_command_line():
    args = parse(["reset", "--control-plane", "10.0.0.11", "--media", "/mnt", "--pod-subnet", "10.1.0.0/16", "-y"])
    assert args.command == "reset" and args.yes


def _record(tmp_path, hosts="127.0.0.1", workers="", **opts):
    b = make_bundle(str(tmp_path / "b"))
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    runner = Runner(b, from_flags(hosts, workers), Options(**opts), Output(root=str(root)), root=str(root),
                    skip_verify=True, local_addrs={"127.0.0.1"})
    return b, root, runner


def test_record_written_on_the_serving_host_and_beside_the_bundle(tmp_path):
    b, root, runner = _record(tmp_path, pod_subnet="10.50.0.0/16")
    conn = Local("127.0.0.1", str(root))
    r = rec.ClusterRecord()
    r.start("install", runner.ctx, dns={"mode": "none", "upstreams": [], "without": ["127.0.0.1"]})
    r.write(conn, b.root)
    serve = json.loads((root / "etc/airgap-bundler/cluster.json").read_text())
    beside = json.loads(open(os.path.join(b.root, "cluster.json")).read())
    assert serve == beside
    assert serve["state"] == "installing" and serve["history"][-1]["result"] == "in progress"
    assert serve["bundle"]["name"] == "k8s" and serve["kubernetes"] == "1.30.4"
    assert serve["inventory"]["hosts"][0]["address"] == "127.0.0.1" and serve["options"]["pod_subnet"] == "10.50.0.0/16"
    assert serve["dns"]["mode"] == "none"
    assert oct(os.stat(str(root / "etc/airgap-bundler/cluster.json")).st_mode & 0o777) == "0o600"
    assert not [n for n in os.listdir(b.root) if "tmp" in n]  # written atomically, nothing left over
    data, path = rec.find(str(root), b.root)
    assert path == str(root / "etc/airgap-bundler/cluster.json")
    assert [h.address for h in rec.inventory_from(data, path).hosts] == ["127.0.0.1"]
    r.remove_serve_copy(conn)
    assert not (root / "etc/airgap-bundler").exists()
    assert rec.find(str(root), b.root)[1] == os.path.join(b.root, "cluster.json")  # the bundle's copy remains


def test_install_marks_the_record_in_progress_then_installed_or_failed(tmp_path, monkeypatch):
    b, root, runner = _record(tmp_path)
    conn = Local("127.0.0.1", str(root))
    monkeypatch.setattr(runner, "prepare", lambda op: runner.ctx.connections.update({"127.0.0.1": conn}))
    monkeypatch.setattr(runner, "gather", lambda hosts=None, phases=(): runner.ctx.journals.update(
        {"127.0.0.1": Journal(conn)}))
    seen = []

    class Failing(Phase):  # stands in for the install phases
        name = "failing"

        def hosts(self, ctx):
            return ctx.all_hosts

        def run(self, ctx, host, conn, facts, journal, report=None):
            seen.append(json.loads((root / "etc/airgap-bundler/cluster.json").read_text())["state"])
            raise InstallerError("boom")

    runner.phases = [Failing()]
    runner.ctx.facts["127.0.0.1"] = None
    with pytest.raises(InstallerError):
        runner.install()
    data = json.loads((root / "etc/airgap-bundler/cluster.json").read_text())
    assert seen == ["installing"] and data["state"] == "installing" and data["history"][-1]["result"] == "failed: boom"
    runner.phases = []
    runner.previous_record = data
    runner.install()
    data = json.loads((root / "etc/airgap-bundler/cluster.json").read_text())
    assert data["state"] == "installed" and [h["result"] for h in data["history"]] == ["failed: boom", "ok"]


def _args(tmp_path, b, *argv):
    return parse(list(argv) + ["--bundle", b.root, "--root", str(tmp_path / "root")])


def test_hosts_and_options_come_from_the_record_given_ones_win(tmp_path):
    b, root, runner = _record(tmp_path, hosts="10.0.0.11", workers="10.0.0.12", pod_subnet="10.50.0.0/16",
                              serve_address="10.0.0.11", upstream_dns="10.0.0.2")
    r = rec.ClusterRecord()
    r.start("install", runner.ctx)
    r.write(Local("x", str(root)), b.root)
    notes = []
    _, inventory, opts, data = resolve(_args(tmp_path, b, "plan"), notes.append)
    assert [h.address for h in inventory.hosts] == ["10.0.0.11", "10.0.0.12"]
    assert opts.pod_subnet == "10.50.0.0/16" and opts.upstream_dns == "10.0.0.2" and opts.selinux == "enforcing"
    assert notes == ["using the cluster record %s (installing, 2 host(s))" % (root / "etc/airgap-bundler/cluster.json")]
    notes = []
    _, inventory, opts, _ = resolve(_args(tmp_path, b, "plan", "--control-plane", "10.0.0.11", "--workers",
                                          "10.0.0.13", "--pod-subnet", "10.60.0.0/16"), notes.append)
    assert [h.address for h in inventory.hosts] == ["10.0.0.11", "10.0.0.13"] and opts.pod_subnet == "10.60.0.0/16"
    assert len(notes) == 1 and "the hosts given differ from the cluster record" in notes[0]
    assert "10.0.0.13 (worker) is not in the record" in notes[0]
    assert "10.0.0.12 (worker) is recorded but not given" in notes[0]


def test_no_hosts_and_no_record(tmp_path, capsys):
    b = make_bundle(str(tmp_path / "b"))
    assert main(["status", "--bundle", b.root, "--root", str(tmp_path / "root")]) == 1
    err = capsys.readouterr().err
    assert "no hosts given, and no cluster record" in err and "--control-plane" in err


def test_damaged_record_is_a_clear_error(tmp_path, capsys):
    b = make_bundle(str(tmp_path / "b"))
    with open(os.path.join(b.root, "cluster.json"), "w") as f:
        f.write("{not json")
    assert main(["status", "--bundle", b.root, "--root", str(tmp_path / "root")]) == 1
    err = capsys.readouterr().err
    assert "the cluster record %s/cluster.json cannot be read" % b.root in err and "Traceback" not in err


def test_status_without_hosts_uses_the_record(tmp_path, capsys):
    """This machine as the recorded single host (local): status connects, reads, and names the record."""
    b, root, runner = _record(tmp_path)
    r = rec.ClusterRecord()
    r.start("install", runner.ctx)
    r.finish("ok", state="installed")
    r.write(Local("x", str(root)), b.root)
    before = sorted(os.listdir(str(root)))
    assert main(["status", "--bundle", b.root, "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "using the cluster record" in out and "cluster record: bundle k8s 1.0.0 (Kubernetes 1.30.4), state " \
                                                  "installed; last operation: install" in out
    assert sorted(os.listdir(str(root))) == before


def test_bad_upstream_dns(tmp_path, capsys):
    b = make_bundle(str(tmp_path / "b"))
    assert main(["plan", "--control-plane", "10.0.0.11", "--upstream-dns", "10.0.0.2,dns.example",
                 "--bundle", b.root, "--root", str(tmp_path / "root")]) == 1
    assert "--upstream-dns: 'dns.example' is not an IP address" in capsys.readouterr().err


def test_damaged_record_does_not_block_given_hosts(tmp_path):
    b = make_bundle(str(tmp_path / "b"))
    with open(os.path.join(b.root, "cluster.json"), "w") as f:
        f.write("{not json")
    notes = []
    _, inventory, _, data = resolve(_args(tmp_path, b, "plan", "--control-plane", "10.0.0.11"), notes.append)
    assert data is None and [h.address for h in inventory.hosts] == ["10.0.0.11"]
    assert "cluster.json cannot be read" in notes[0] and "the hosts given are used" in notes[0]


def test_record_keeps_the_ssh_key_as_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(str(tmp_path))
    inventory = from_flags("10.0.0.11", "", key="keys/id_ed25519")
    assert rec.host_entries(inventory)[0]["key"] == str(tmp_path / "keys" / "id_ed25519")


def test_in_cluster_copy_is_a_configmap_holding_the_record_json():
    """install/add-node/remove-node kubectl-apply the record as kube-system/airgap-bundler-cluster; a failure
    there is a note, not an error (the serving host's record is the truth)."""
    import json as _json
    from types import SimpleNamespace

    import yaml

    from installer.record import ClusterRecord, configmap

    r = ClusterRecord({"inventory": {"hosts": [{"address": "10.0.0.1"}]}, "history": [{"operation": "install"}],
                       "note": "a: b | c\n  - d"})
    doc = yaml.safe_load(configmap(r.text()))
    assert (doc["kind"], doc["metadata"]["namespace"], doc["metadata"]["name"]) == \
        ("ConfigMap", "kube-system", "airgap-bundler-cluster")
    assert _json.loads(doc["data"]["cluster.json"]) == r.data

    calls, said = [], []

    class Conn:
        def __init__(self, ok):
            self.ok = ok

        def run(self, cmd, input=None, check=True, timeout=None):
            calls.append((cmd, input))
            return SimpleNamespace(ok=self.ok, stdout=b"", stderr=b"" if self.ok else b"connection refused")

    assert r.publish(Conn(True), said.append) is True and not said
    assert calls[0][0].endswith("apply -f -") and "--kubeconfig /etc/kubernetes/admin.conf" in calls[0][0]
    assert calls[0][1] == configmap(r.text())
    assert r.publish(Conn(False), said.append) is False
    assert "ConfigMap kube-system/airgap-bundler-cluster" in said[0] and "connection refused" in said[0]
