"""status: hosts that do not answer (or --skip-unreachable NAME) are listed as such, not fatal; without a
readable record on this host it falls back to the in-cluster copy (ConfigMap kube-system/airgap-bundler-cluster)
and says so."""

import json
import os

from installer import record as rec
from installer import runner as runner_mod
from installer.cli import main, parse
from installer.errors import InstallerError

from .conftest import make_bundle

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "kubectl",
                       "configmap-airgap-bundler-cluster.json")


def _fixture():
    with open(FIXTURE) as f:
        return f.read()


class _DownSSH:
    """Stands in for installer.ssh.SSH: every remote host is down (no traffic leaves the machine)."""

    def __init__(self, host, log=None):
        self.host = host

    def check(self, cmd, what=None, **kw):
        raise InstallerError("ssh: connect to host %s port 22: No route to host" % self.host.address)


def test_status_goes_on_without_hosts_that_do_not_answer_and_skips_the_named_ones(tmp_path, monkeypatch, capsys):
    b = make_bundle(str(tmp_path / "b"))
    root = tmp_path / "root"
    root.mkdir()
    monkeypatch.setattr(runner_mod, "SSH", _DownSSH)
    assert parse(["status", "--skip-unreachable", "w1"]).skip_unreachable == "w1"
    rc = main(["status", "--control-plane", "127.0.0.1", "--workers", "10.0.0.12,10.0.0.13", "--skip-unreachable",
               "10.0.0.13", "--bundle", b.root, "--root", str(root)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "[10.0.0.12] does not answer (ssh: connect to host 10.0.0.12 port 22: No route to host): status goes " \
           "on without it" in out
    assert "[10.0.0.12] not contacted: ssh: connect to host 10.0.0.12" in out
    assert "[10.0.0.13] not contacted: skipped (--skip-unreachable)" in out
    assert "[127.0.0.1]" in out and "phases done: none" in out
    assert main(["status", "--control-plane", "127.0.0.1", "--skip-unreachable", "w9", "--bundle", b.root,
                 "--root", str(root)]) == 1
    assert "--skip-unreachable w9: no such host in the cluster" in capsys.readouterr().err


def test_the_in_cluster_copy_is_read_from_kubectls_json():
    r = rec.configmap_record(_fixture())
    assert r["inventory"]["hosts"][0]["nodeName"] == "cp1" and r["history"][-1]["operation"] == "install"
    assert rec.configmap_record(json.dumps({"kind": "ConfigMap", "data": {}})) is None


def _admin_conf(root):
    os.makedirs(str(root / "etc" / "kubernetes"))
    (root / "etc" / "kubernetes" / "admin.conf").write_text("apiVersion: v1\n")


def test_status_falls_back_to_the_configmap_without_a_record_here(tmp_path, monkeypatch, capsys):
    b = make_bundle(str(tmp_path / "b"))
    root = tmp_path / "root"
    _admin_conf(root)
    asked = []

    def read(conn):
        asked.append(conn.root)
        return rec.configmap_record(_fixture())

    monkeypatch.setattr(rec, "read_configmap", read)
    assert main(["status", "--bundle", b.root, "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "note: no cluster record on this host (/etc/airgap-bundler/cluster.json); status uses the in-cluster " \
           "copy (ConfigMap kube-system/airgap-bundler-cluster)" in out
    assert "cluster record: bundle k8s 1.0.0 (Kubernetes 1.30.4), state installed; last operation: install" in out
    assert asked and not os.path.exists(str(root / "etc" / "airgap-bundler"))  # status wrote nothing
    # a damaged record: the same fallback, the reason said
    with open(os.path.join(b.root, "cluster.json"), "w") as f:
        f.write("{not json")
    assert main(["status", "--bundle", b.root, "--root", str(root)]) == 0
    assert "cluster.json cannot be read" in capsys.readouterr().out


def test_without_record_or_control_plane_here_status_says_what_to_give(tmp_path, capsys):
    b = make_bundle(str(tmp_path / "b"))
    assert main(["status", "--bundle", b.root, "--root", str(tmp_path / "root")]) == 1
    assert "no hosts given, and no cluster record" in capsys.readouterr().err
