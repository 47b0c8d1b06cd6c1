"""The Ansible playbook installer/ansible/site.yml on the rig, run with ansible-core from the test machine over
SSH with the rig's key: node1 + node2 installed, then the playbook adds node3 (node prepare on node1, node
apply on node3 from only install.py + installer/ and the join file, node finish on node1). A first run stopped
before finish (--skip-tags finish) joins node3 without recording it; the full re-run replaces the join file
(its token deleted), re-applies on node3 with 0 changes and finishes. Asserted: node3 Ready in the apiserver
double's view, the record and its ConfigMap list node3, every token deleted, the join file gone everywhere,
node2 not re-joined, nothing leaks; reset gives node3 back as found.
kubeadm/kubelet/kubectl are TEST DOUBLES (tests/e2e/content/doubles)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from rig import TIMER, LeakTrap

from tests.e2e import scenario
from tests.e2e.test_day2 import checksums, in_cluster_record
from tests.e2e.test_install import _double_calls, run

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "installer" / "ansible" / "site.yml"


def ansible_playbook() -> str:
    """ansible-playbook of this venv (ansible-core from the `test` extra; installed here when missing)."""
    exe = Path(sys.executable).parent / "ansible-playbook"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "ansible-core>=2.14"], check=True, timeout=600)
    return str(exe)


def _inventory(path: Path, rig, bundle_dir: str) -> None:  # noqa: ANN001
    node1, _, node3 = rig.nodes.nodes
    ssh = f"-F {rig.ssh_config} -o ControlMaster=no"
    path.write_text(
        f"[airgap_serving]\nnode1 ansible_host={node1.ip}\n\n[airgap_new]\nnode3 ansible_host={node3.ip}\n\n"
        "[airgap_serving:vars]\nansible_python_interpreter=/usr/bin/python3\n\n"
        "[airgap_new:vars]\nansible_python_interpreter=/usr/bin/python3\n\n"
        f"[all:vars]\nansible_user=root\nansible_ssh_private_key_file={rig.ssh_key}\nansible_ssh_common_args='{ssh}'\n"
        f"airgap_bundle_dir={bundle_dir}\n")


def test_playbook_adds_node3(rig, containerd_bundle, upstream, clean_trap, tmp_path):
    tarball, _ = containerd_bundle
    node1, node2, node3 = rig.nodes.nodes
    exe = ansible_playbook()
    before3 = scenario.snapshot(node3)
    with TIMER.stage("e2e ansible: deliver bundle, install node1 + node2"):
        bundle_dir = rig.deliver_bundle(tarball)
        scenario.put_media(node1, upstream)
        node1.exec(["rm", "-f", f"{bundle_dir}/cluster.json", "/root/airgap-node-join.json"])
        first = run(node1, scenario.install_command(bundle_dir, ["--control-plane", node1.ip, "--workers", node2.ip]))
    try:
        assert first.returncode == 0, first.stdout[-6000:]
        inventory = tmp_path / "inventory.ini"
        _inventory(inventory, rig, bundle_dir)
        home = tmp_path / "ansible-home"
        env = dict(os.environ, ANSIBLE_HOME=str(home), ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
                   ANSIBLE_CONFIG=str(tmp_path / "none.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0",
                   ANSIBLE_SSH_ARGS="-o ControlMaster=no", ANSIBLE_FORCE_COLOR="0")
        joins2 = len(_double_calls(node2, "join"))
        tokens_before = len(_double_calls(node1, "token create"))
        (tmp_path / "local").mkdir()
        playbook = [exe, "-i", str(inventory), str(PLAYBOOK), "-e", "airgap_batch=5", "-e",
                    f"airgap_local_tmp={tmp_path / 'local'}"]
        with TIMER.stage("e2e ansible: playbook stopped before finish (--skip-tags finish)"):
            stopped = subprocess.run(playbook + ["--skip-tags", "finish"], cwd=tmp_path, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
        assert stopped.returncode == 0, stopped.stdout[-8000:]
        assert "node apply: " in stopped.stdout and " 0 change(s)" not in stopped.stdout, stopped.stdout[-4000:]
        record = json.loads(node1.read_file("/etc/airgap-bundler/cluster.json"))
        assert node3.ip not in {h["address"] for h in record["inventory"]["hosts"]}  # not finished: not recorded
        # the plan form on the joined host, from the kit the playbook left there: nothing to change, nothing changed
        node3.write_file("/root/j.json", node1.read_file("/root/airgap-node-join.json"), "0600")
        sums = checksums(node3)
        plan = run(node3, "cd /root/airgap-node && ./install.py plan node apply --join /root/j.json")
        node3.exec(["rm", "-f", "/root/j.json"])
        assert plan.returncode == 0 and "plan node apply: no changes" in plan.stdout, plan.stdout[-3000:]
        assert checksums(node3) == sums
        with TIMER.stage("e2e ansible: playbook again, complete"):
            play = subprocess.run(playbook, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, timeout=900)
        assert play.returncode == 0, play.stdout[-8000:]
        assert "node finish: node3" in play.stdout, play.stdout[-4000:]
        # node apply is idempotent: on node3, already joined, the second run changed nothing
        assert f"node apply: {node3.ip} joined as node3; 0 change(s)" in play.stdout, play.stdout[-4000:]
        nodes = node1.sh("kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes")
        assert any(ln.split()[:2] == ["node3", "Ready"] for ln in nodes.splitlines()), nodes
        record = json.loads(node1.read_file("/etc/airgap-bundler/cluster.json"))
        hosts = {h["address"]: h for h in record["inventory"]["hosts"]}
        assert sorted(hosts) == sorted([node1.ip, node2.ip, node3.ip]) and hosts[node3.ip]["nodeName"] == "node3"
        ops = [(e["operation"], e["result"].split(" ")[0]) for e in record["history"][-2:]]
        assert ops == [(f"node prepare {node3.ip}", "ok"), (f"node finish {node3.ip}", "ok")], ops
        assert in_cluster_record(node1) == record  # the ConfigMap kube-system/airgap-bundler-cluster
        # one token per prepare: the first one deleted when the second prepare replaced its join file, the second
        # by node finish; node3 joined (once) with the first
        created = _double_calls(node1, "token create")[tokens_before:]
        assert len(created) == 2, created
        for c in created:
            tid = c["token"].split(".")[0]
            assert [d for d in _double_calls(node1, "token delete") if d.get("token") == tid], tid
            assert tid not in node1.sh("kubeadm token list")
        joins3 = [c for c in _double_calls(node3, "join") if c.get("config")]
        assert len(joins3) == 1 and created[0]["token"] in joins3[0]["config"]
        assert not list((tmp_path / "local").iterdir())  # the Ansible machine's working directory is gone
        assert len(_double_calls(node2, "join")) == joins2  # nothing re-done on node2
        for node, path in ((node1, "/root/airgap-node-join.json"), (node3, "/root/airgap-node/node-join.json")):
            assert node.exec(["test", "-e", path], check=False).returncode != 0, path  # no token left behind
        assert node3.exec(["test", "-e", "/root/airgap-node/bundle.json"], check=False).returncode != 0  # kit only
        assert node3.ip in node1.read_file("/etc/hosts") and node3.ip in node2.read_file("/etc/hosts")
        assert node1.ip in node3.read_file("/etc/hosts")
        assert f"http://{node1.ip}:8089/repo" in node3.sh("cat /etc/yum.repos.d/*.repo")
        # node apply is idempotent: again, with a fresh join file, nothing changes on node3
        prep = run(node1, f"cd {bundle_dir} && ./install.py node prepare --hosts {node3.ip}")
        assert prep.returncode != 0 and "already in the cluster" in prep.stdout, prep.stdout[-2000:]
    finally:
        with TIMER.stage("e2e ansible: reset"):
            reset = run(node1, f"cd {bundle_dir} && ./install.py reset -y")
            node3.exec(["rm", "-rf", "/root/airgap-node"], check=False)
    assert reset.returncode == 0, reset.stdout[-3000:]
    assert scenario.snapshot(node3) == before3
    assert clean_trap.connections() == [], LeakTrap.describe(clean_trap.connections())
