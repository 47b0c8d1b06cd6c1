"""Day 2 on the rig: add node3 as a worker to an installed node1 + node2 cluster (node2 down and skipped),
then remove it; remove a dead control plane from three.

plan, plan with the recorded hosts and status on the installed cluster change nothing (same checksums, the
kubectl double only asked `get`); after install, add-node and remove-node the ConfigMap
kube-system/airgap-bundler-cluster holds the record, as on the serving host.

plan add-node first (it lists node3's phases and, for node1/node2, only the /etc/hosts block and node1's time
clients, and changes nothing: checksums of host files, journals, the record and the doubles' logs); preflight
refuses node3 while it cannot reach the API (an iptables REJECT); a join that fails (a kubeadm wrapper) resets
node3 only; the re-run completes; remove-node refuses node1 (the serving host), plans node3's removal
(changing nothing) and removes it (cordon, drain, host reset, delete). kubeadm/kubelet/kubectl are TEST
DOUBLES (tests/e2e/content/doubles): they record every call.
"""

from __future__ import annotations

import json

from rig import TIMER, LeakTrap

from tests.e2e import scenario
from tests.e2e.test_install import _double_calls, run

# what plan must leave alone, on every node
WATCHED = ("/etc/hosts /etc/chrony.conf /var/lib/airgap-installer/journal.json /etc/airgap-bundler/cluster.json "
           "/var/log/kubeadm-double.log /var/log/kubectl-double.log /etc/yum.repos.d/* /etc/containerd/config.toml")


def checksums(node, kubectl_log: bool = True, extra: str = "") -> str:  # noqa: ANN001
    """Hashes of WATCHED (+ extra), and what is in the installer's state, Kubernetes and log directories."""
    watched = WATCHED if kubectl_log else WATCHED.replace("/var/log/kubectl-double.log ", "")
    return node.sh(f"sha256sum {watched} {extra} 2>/dev/null; ls -A /var/lib/airgap-installer /etc/kubernetes "
                   "/var/log/airgap-installer 2>/dev/null; true")


def test_add_worker_plan_failed_join_resets_only_it_then_rerun(rig, containerd_bundle, upstream, clean_trap):
    tarball, _ = containerd_bundle
    node1, node2, node3 = rig.nodes.nodes
    before3 = scenario.snapshot(node3)
    with TIMER.stage("e2e day2: deliver bundle, install node1 + node2"):
        bundle_dir = rig.deliver_bundle(tarball)
        scenario.put_media(node1, upstream)
        node1.exec(["rm", "-f", f"{bundle_dir}/cluster.json"])
        first = run(node1, scenario.install_command(
            bundle_dir, ["--control-plane", node1.ip, "--workers", node2.ip]))
    assert first.returncode == 0, first.stdout[-6000:]
    record = json.loads(node1.read_file("/etc/airgap-bundler/cluster.json"))
    assert len(record["bundle"]["sha256"]) == 64 and len(record["inventory"]["hosts"]) == 2
    assert in_cluster_record(node1) == record  # the ConfigMap kube-system/airgap-bundler-cluster
    add = f"cd {bundle_dir} && ./install.py add-node --workers {node3.ip}"
    try:
        with TIMER.stage("e2e day2: plan and status change nothing"):
            sums = {n.name: checksums(n, kubectl_log=False, extra=f"{bundle_dir}/cluster.json") for n in rig.nodes}
            for cmd in (scenario.install_command(bundle_dir, ["--control-plane", node1.ip, "--workers", node2.ip],
                                                 "plan"),
                        f"cd {bundle_dir} && ./install.py plan",  # hosts from the cluster record
                        f"cd {bundle_dir} && ./install.py status"):
                kubectl_before = len(_kubectl_argvs(node1))
                res = run(node1, cmd)
                assert res.returncode == 0, cmd + "\n" + res.stdout[-4000:]
                after = {n.name: checksums(n, kubectl_log=False, extra=f"{bundle_dir}/cluster.json") for n in rig.nodes}
                assert after == sums, cmd  # journals, record, host files, kubeadm double's log, log dir: unchanged
                # the kubectl double logs every call: only reads
                assert {a[2] for a in _kubectl_argvs(node1)[kubectl_before:]} <= {"get"}, cmd
        with TIMER.stage("e2e day2: plan add-node"):
            sums = {n.name: checksums(n) for n in rig.nodes}
            plan = run(node1, f"cd {bundle_dir} && ./install.py plan add-node --workers {node3.ip}")
            assert plan.returncode == 0, plan.stdout[-4000:]
            assert {n.name: checksums(n) for n in rig.nodes} == sums  # plan changes nothing
        lines = [ln for ln in plan.stdout.splitlines() if ln.startswith("[")]
        for ip in (node1.ip, node2.ip):
            mine = [ln for ln in lines if ln.startswith(f"[{ip}]") and ": write " in ln or
                    ln.startswith(f"[{ip}]") and "service" in ln]
            assert mine and all("cluster_hosts: " in ln for ln in mine), mine
            assert any("write /etc/hosts" in ln for ln in mine), mine
        assert any(ln.startswith(f"[{node3.ip}]") and "kubeadm join" in ln for ln in lines), plan.stdout[-3000:]
        assert "plan add-node:" in plan.stdout

        with TIMER.stage("e2e day2: add-node, the join fails, node3 reset"):
            # preflight first: node3 must reach the API (blocked here) before anything changes
            node3.sh(f"iptables -I OUTPUT -d {node1.ip} -p tcp --dport 6443 -j REJECT")
            try:
                unreachable = run(node1, add)
            finally:
                node3.sh(f"iptables -D OUTPUT -d {node1.ip} -p tcp --dport 6443 -j REJECT")
            assert unreachable.returncode != 0, unreachable.stdout[-3000:]
            assert f"{node3.ip} cannot reach the Kubernetes API at {node1.ip}:6443" in unreachable.stdout
            assert scenario.snapshot(node3) == before3
            # then a join that fails (a kubeadm wrapper ahead in PATH refuses `join`)
            node3.write_file("/usr/local/bin/kubeadm", "#!/bin/sh\ncase \"$1\" in join) echo 'injected join "
                             "failure' >&2; exit 1 ;; esac\nexec /usr/bin/kubeadm \"$@\"\n", mode="0755")
            joins2 = len(_double_calls(node2, "join"))
            try:
                failed = run(node1, add)
            finally:
                node3.sh("rm -f /usr/local/bin/kubeadm")
        assert failed.returncode != 0, failed.stdout[-3000:]
        assert "The new host(s) were reset; the cluster is as before" in failed.stdout, failed.stdout[-3000:]
        assert "injected join failure" in failed.stdout
        assert scenario.snapshot(node3) == before3  # node3 as found
        assert node3.exec(["test", "-e", "/var/lib/airgap-installer"], check=False).returncode != 0
        assert len(_double_calls(node2, "join")) == joins2  # nothing re-done on node2
        record = json.loads(node1.read_file("/etc/airgap-bundler/cluster.json"))
        assert len(record["inventory"]["hosts"]) == 2
        assert record["history"][-1]["result"].startswith("failed (new hosts reset)")
        assert node1.exec(["test", "-e", "/etc/airgap-bundler/lock"], check=False).returncode != 0

        with TIMER.stage("e2e day2: add-node re-run, node2 down and skipped"):
            node2.sh("systemctl stop sshd kubelet")  # down: no SSH, its Node goes stale
            try:
                blocked = run(node1, add)
                assert blocked.returncode != 0 and "Nothing was changed" in blocked.stdout, blocked.stdout[-2000:]
                hosts2 = node2.read_file("/etc/hosts")
                tokens_before = len(_double_calls(node1, "token create"))
                done = run(node1, add + " --skip-unreachable node2")
            finally:
                node2.sh("systemctl start sshd kubelet")
        assert done.returncode == 0, done.stdout[-6000:]
        assert "(skipped: " in done.stdout and node2.read_file("/etc/hosts") == hosts2  # not touched
        assert f"add-node: {node3.ip} joined" in done.stdout
        # one short-lived token for the operation, deleted at its end; node3 joined with it
        created = _double_calls(node1, "token create")[tokens_before:]
        deleted = [c for c in _double_calls(node1, "token delete")
                   if c.get("token") == created[0]["token"].split(".")[0]]
        assert len(created) == 1 and "--ttl" in created[0]["argv"] and len(deleted) == 1 and "result" not in deleted[0]
        join = [c for c in _double_calls(node3, "join") if c.get("config")][-1]
        assert created[0]["token"] in join["config"]
        assert created[0]["token"] not in node1.sh("kubeadm token list")
        assert len(_double_calls(node2, "join")) == joins2
        record = json.loads(node1.read_file("/etc/airgap-bundler/cluster.json"))
        assert sorted(h["address"] for h in record["inventory"]["hosts"]) == sorted([node1.ip, node2.ip, node3.ip])
        assert record["history"][-1]["operation"] == f"add-node {node3.ip}" and record["history"][-1]["result"] == "ok"
        assert in_cluster_record(node1) == record
        assert node3.ip in node1.read_file("/etc/hosts")
        nodes = node1.sh("kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes")
        assert "node3" in nodes, nodes
        again = run(node1, add)  # node3 is in the cluster now
        assert again.returncode != 0 and "is already in the cluster" in again.stdout, again.stdout[-2000:]

        with TIMER.stage("e2e day2: remove-node (refuse node1, plan, remove node3)"):
            refused = run(node1, f"cd {bundle_dir} && ./install.py remove-node node1 -y")
            assert refused.returncode != 0 and "is the serving host" in refused.stdout, refused.stdout[-2000:]
            node1.write_file("/root/pdb.yaml", "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n"
                             "  name: blocker\n  namespace: default\nspec:\n  minAvailable: 1\n")
            node1.sh("kubectl --kubeconfig /etc/kubernetes/admin.conf apply -f /root/pdb.yaml && rm /root/pdb.yaml")
            sums = {n.name: checksums(n, kubectl_log=False) for n in rig.nodes}
            kubectl_before = len(_kubectl_argvs(node1))
            plan = run(node1, f"cd {bundle_dir} && ./install.py plan remove-node node3")
            # a budget that covers no pod on node3 (no selector: it selects nothing) does not block its drain
            assert "default/blocker" not in plan.stdout, plan.stdout
            assert plan.returncode == 0, plan.stdout[-3000:]
            assert {n.name: checksums(n, kubectl_log=False) for n in rig.nodes} == sums  # plan changes nothing
            # it asked the cluster (kubectl get: the state checks) and changed nothing there
            assert {a[2] for a in _kubectl_argvs(node1)[kubectl_before:]} == {"get"}
            for step in ("cordon node3", "drain node3", "reset the host", "delete node node3"):
                assert step in plan.stdout, plan.stdout[-3000:]
            # a removal that stopped after the cordon: the steps check their state, the re-run does the rest
            node1.sh("kubectl --kubeconfig /etc/kubernetes/admin.conf cordon node3")
            resume = run(node1, f"cd {bundle_dir} && ./install.py plan remove-node node3")
            assert "cordon node3" not in resume.stdout and "drain node3" in resume.stdout, resume.stdout[-3000:]
            kubectl_before = len(_kubectl_argvs(node1))
            removed = run(node1, f"cd {bundle_dir} && ./install.py remove-node node3 -y --drain-timeout 60")
        assert removed.returncode == 0, removed.stdout[-4000:]
        verbs = [a[2] for a in _kubectl_argvs(node1)[kubectl_before:] if len(a) > 2 and a[2] in
                 ("cordon", "drain", "delete")]
        assert verbs == ["drain", "delete"], verbs  # cordoned already
        drain = [a for a in _kubectl_argvs(node1)[kubectl_before:] if "drain" in a][0]
        assert "--timeout=60s" in drain and "--ignore-daemonsets" in drain
        assert "node3" not in node1.sh("kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes")
        assert scenario.snapshot(node3) == before3  # reset, as found
        record = json.loads(node1.read_file("/etc/airgap-bundler/cluster.json"))
        assert sorted(h["address"] for h in record["inventory"]["hosts"]) == sorted([node1.ip, node2.ip])
        assert record["history"][-1]["operation"] == "remove-node node3"
        assert in_cluster_record(node1) == record
        resumed = run(node1, f"cd {bundle_dir} && ./install.py plan remove-node {node3.ip}")
        assert resumed.returncode != 0 and "no node" in resumed.stdout  # gone from the record
    finally:
        with TIMER.stage("e2e day2: reset"):
            reset = run(node1, f"cd {bundle_dir} && ./install.py reset -y")
    assert reset.returncode == 0, reset.stdout[-3000:]
    assert scenario.snapshot(node3) == before3
    assert clean_trap.connections() == [], LeakTrap.describe(clean_trap.connections())


def in_cluster_record(node) -> dict:  # noqa: ANN001
    """The record in the last ConfigMap kube-system/airgap-bundler-cluster applied (the kubectl double logs it)."""
    text = node.exec(["sh", "-c", "cat /var/log/kubectl-double.log 2>/dev/null"], check=False).stdout
    docs = [d for line in text.splitlines() if line.strip() for d in json.loads(line).get("documents") or []
            if "name: airgap-bundler-cluster" in d]
    assert docs, "no ConfigMap airgap-bundler-cluster applied"
    block = docs[-1].split("cluster.json: |\n", 1)[1]
    return json.loads("".join(ln[4:] + "\n" for ln in block.splitlines() if ln.startswith("    ")))


def _kubectl_argvs(node) -> list[list[str]]:  # noqa: ANN001
    text = node.exec(["sh", "-c", "cat /var/log/kubectl-double.log 2>/dev/null"], check=False).stdout
    return [json.loads(line).get("argv") or [] for line in text.splitlines() if line.strip()]


def test_remove_a_dead_control_plane(rig, containerd_bundle, upstream, clean_trap):
    """node1, node2 installed as control planes, node3 added as the third (add-node --control-plane); node3
    dies; remove-node node3 takes its etcd member out by name (from node1), deletes its Node and leaves the dead
    host alone. Removing it while node2 is skipped too is refused (no etcd quorum)."""
    tarball, _ = containerd_bundle
    node1, node2, node3 = rig.nodes.nodes
    with TIMER.stage("e2e day2: install 2 control planes, add-node --control-plane node3"):
        bundle_dir = rig.deliver_bundle(tarball)
        scenario.put_media(node1, upstream)
        node1.exec(["rm", "-f", f"{bundle_dir}/cluster.json"])
        first = run(node1, scenario.install_command(bundle_dir, ["--control-plane", f"{node1.ip},{node2.ip}"]))
        added = run(node1, f"cd {bundle_dir} && ./install.py add-node --control-plane {node3.ip}") \
            if first.returncode == 0 else first
    try:
        assert first.returncode == 0, first.stdout[-6000:]
        assert added.returncode == 0, added.stdout[-6000:]
        cp_join = [c for c in _double_calls(node3, "join") if c.get("result") == "ok"][-1]
        assert cp_join.get("controlPlane") is True, cp_join
        assert "test-double" in node3.sh("/usr/local/bin/helm version")  # helm on the new control plane
        with TIMER.stage("e2e day2: remove the dead control plane node3"):
            node3.sh("systemctl stop sshd kubelet")  # dead
            try:
                lost = run(node1, f"cd {bundle_dir} && ./install.py remove-node node3 -y --skip-unreachable node2")
                assert lost.returncode != 0 and "etcd has 3 members of which 1 answer" in lost.stdout, lost.stdout
                before = len(_kubectl_argvs(node1))
                removed = run(node1, f"cd {bundle_dir} && ./install.py remove-node node3 -y")
                assert removed.returncode == 0, removed.stdout[-4000:]
                assert "does not answer: it is removed from the cluster but not reset" in removed.stdout
                calls = [a[2:] for a in _kubectl_argvs(node1)[before:] if a[2:3] not in (["get"], ["apply"], [])]
                steps = [c[0] if c[0] != "-n" else c[4:][c[4:].index("member"):][:2] for c in calls]
                assert steps == ["cordon", "drain", ["member", "list"], ["member", "remove"], "delete"], steps
                members = node1.sh("kubectl --kubeconfig /etc/kubernetes/admin.conf -n kube-system exec etcd-node1 "
                                   "-- etcdctl member list -w json")
                assert [m["name"] for m in json.loads(members)["members"]] == ["node1", "node2"]
                record = json.loads(node1.read_file("/etc/airgap-bundler/cluster.json"))
                assert in_cluster_record(node1) == record and len(record["inventory"]["hosts"]) == 2
                assert "node3" not in node1.sh("kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes")
                again = run(node1, f"cd {bundle_dir} && ./install.py remove-node {node3.ip} -y")
                assert again.returncode != 0 and "no node" in again.stdout  # gone from the record
            finally:
                node3.sh("systemctl start sshd")
    finally:
        with TIMER.stage("e2e day2: reset (3 control planes)"):
            node3.sh("systemctl start sshd")
            reset = run(node1, f"cd {bundle_dir} && ./install.py reset -y")
            reset3 = run(node1, f"cd {bundle_dir} && ./install.py reset -y --control-plane {node1.ip},{node3.ip}")
    assert reset.returncode == 0 and reset3.returncode == 0, reset.stdout[-2000:] + reset3.stdout[-2000:]
    assert clean_trap.connections() == [], LeakTrap.describe(clean_trap.connections())
