"""Certificates and backups on the rig (issue 15), one install: node1 + node2 control planes, node3 a worker.

certs check on the fresh cluster (every certificate > 300 days); an expiring certificate made with openssl is
warned by certs check and status; plan certs renew changes nothing; certs renew goes one control plane at a time
and restarts node1's static pods one by one (from the kubeadm and crictl doubles' logs); backup three times with
--keep 2 (retention at both ends, 0600, sha256); a tampered archive is refused with nothing changed; plan
restore changes nothing; restore puts the snapshot back on both control planes (etcdctl double's log: the
member's name, peer URL and the backed-up snapshot), pods stopped and started in order. kubeadm, kubelet,
kubectl, crictl and etcdctl are TEST DOUBLES (tests/e2e/content/doubles).
"""

from __future__ import annotations

import json

from rig import TIMER, LeakTrap

from tests.e2e import scenario
from tests.e2e.test_install import run

PODS = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]
BK = "/root/airgap-bk-test"
WATCHED = ("/etc/hosts /var/lib/airgap-installer/journal.json /etc/airgap-bundler/cluster.json "
           "/var/log/kubeadm-double.log /var/log/etcdctl-double.log "
           "/etc/kubernetes/manifests/* /etc/kubernetes/pki/*.crt /etc/airgap-registry/pki/registry.crt")


def sums(node) -> str:  # noqa: ANN001
    """Hashes of WATCHED, of the installer's crictl calls (the kubelet double's own `crictl images` are not ours),
    and what is in the directories a restore or renew would change."""
    return node.sh(f"sha256sum {WATCHED} 2>/dev/null; grep '\"ps\"' /var/log/crictl-double.log | sha256sum; "
                   "ls -A /var/lib /etc/kubernetes /etc/kubernetes/manifests /etc/airgap-bundler "
                   "/var/lib/airgap-installer 2>/dev/null; true")


def log(node, name: str) -> list[dict]:  # noqa: ANN001
    text = node.exec(["sh", "-c", f"cat /var/log/{name} 2>/dev/null"], check=False).stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def check_json(node1, bundle_dir: str) -> list[dict]:  # noqa: ANN001
    res = run(node1, f"cd {bundle_dir} && ./install.py certs check --json")
    assert res.returncode == 0, res.stdout[-3000:]
    return json.loads(res.stdout[res.stdout.index("{"):])["certificates"]


def ps_sequence(entries: list[dict]) -> list[tuple[str, bool]]:
    """(pod, running) of each `crictl ps --name` the installer made, consecutive repeats folded."""
    out: list[tuple[str, bool]] = []
    for e in entries:
        if "ps" in e:
            item = (e["ps"].strip("^$"), bool(e["containers"]))
            if not out or out[-1] != item:
                out.append(item)
    return out


def test_certs_check_renew_backup_restore(rig, containerd_bundle, upstream, clean_trap):
    tarball, _ = containerd_bundle
    node1, node2, node3 = rig.nodes.nodes
    with TIMER.stage("e2e certs: deliver bundle, install node1 + node2 (control planes), node3"):
        bundle_dir = rig.deliver_bundle(tarball)
        scenario.put_media(node1, upstream)
        node1.exec(["rm", "-f", f"{bundle_dir}/cluster.json"])
        first = run(node1, scenario.install_command(
            bundle_dir, ["--control-plane", f"{node1.ip},{node2.ip}", "--workers", node3.ip]))
    cd = f"cd {bundle_dir} && ./install.py"
    try:
        assert first.returncode == 0, first.stdout[-6000:]
        with TIMER.stage("e2e certs: check, an expiring certificate, status"):
            rows = check_json(node1, bundle_dir)
            assert {r["host"] for r in rows} == {node1.ip, node2.ip, node3.ip}
            assert {r["source"] for r in rows} >= {"kubeadm", "ca", "registry"}
            assert all(r["status"] == "ok" and r["days"] > 300 for r in rows), [r for r in rows if r["days"] <= 300]
            assert len([r for r in rows if r["host"] == node1.ip and r["source"] == "kubeadm"]) == 11  # kubeadm's list
            # an expiring front-proxy client certificate (signed by the cluster CA) and kubelet serving certificate
            node1.sh("cd /etc/kubernetes/pki && openssl req -new -newkey rsa:2048 -nodes "
                     "-keyout front-proxy-client.key -subj /CN=front-proxy-client -out /tmp/fp.csr 2>/dev/null && "
                     "openssl x509 -req -in /tmp/fp.csr "
                     "-CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -out front-proxy-client.crt 2>/dev/null && "
                     "rm /tmp/fp.csr")
            node3.sh("mkdir -p /var/lib/kubelet/pki && openssl req -x509 -newkey rsa:2048 -nodes -days 20 -subj "
                     "/CN=node3 -keyout /var/lib/kubelet/pki/kubelet.key -out /var/lib/kubelet/pki/kubelet.crt "
                     "2>/dev/null")
            text = run(node1, f"{cd} certs check")
            assert text.returncode == 0, text.stdout[-3000:]
            line = next(ln for ln in text.stdout.splitlines() if "front-proxy-client" in ln and node1.ip in ln)
            assert line.split()[-1] == "warn" and line.split()[-2] in ("29", "30"), line
            assert "below 90 days or expired/missing" in text.stdout
            status = run(node1, f"{cd} status")
            assert status.returncode == 0, status.stdout[-3000:]
            assert f"[{node1.ip}] warning: certificate kubeadm front-proxy-client: 29 day(s) left" in status.stdout or \
                f"[{node1.ip}] warning: certificate kubeadm front-proxy-client: 30 day(s) left" in status.stdout, \
                status.stdout[-3000:]
            assert f"[{node3.ip}] warning: certificate kubelet kubelet.crt: " in status.stdout

        with TIMER.stage("e2e certs: plan certs renew changes nothing, renew"):
            before = {n.name: sums(n) for n in rig.nodes}
            plan = run(node1, f"{cd} plan certs renew")
            assert plan.returncode == 0, plan.stdout[-3000:]
            assert {n.name: sums(n) for n in rig.nodes} == before
            for ip in (node1.ip, node2.ip):
                assert f"[{ip}] certs_renew: kubeadm certs renew all" in plan.stdout, plan.stdout[-3000:]
            assert f"[{node1.ip}] certs_renew: restart the static pod etcd" in plan.stdout
            assert "re-issue /etc/airgap-registry/pki/registry.crt" in plan.stdout
            crictl1 = len(log(node1, "crictl-double.log"))
            reg_before = node1.sh("sha256sum /etc/airgap-registry/pki/registry.crt")
            renew = run(node1, f"{cd} certs renew -y")
        assert renew.returncode == 0, renew.stdout[-6000:]
        r1 = [c for c in log(node1, "kubeadm-double.log") if c.get("command") == "certs renew"]
        r2 = [c for c in log(node2, "kubeadm-double.log") if c.get("command") == "certs renew"]
        assert len(r1) == 1 and len(r2) == 1 and "front-proxy-client" in r1[0]["renewed"]
        ps1 = [e for e in log(node1, "crictl-double.log")[crictl1:] if "ps" in e]
        # node1's pods one by one: each stopped (gone) then running again before the next one is touched
        assert ps_sequence(ps1) == [(p, s) for p in PODS for s in (False, True)], ps_sequence(ps1)
        # one control plane at a time: node2 renews only after node1's last pod is back
        assert ps1[-1]["time"] <= r2[0]["time"] and r1[0]["t0"] < r2[0]["t0"]
        assert node1.sh("ls /etc/kubernetes/manifests").split() == sorted(f"{p}.yaml" for p in PODS)
        assert node1.sh("sha256sum /etc/airgap-registry/pki/registry.crt") != reg_before
        assert node1.sh("systemctl is-active airgap-registry").strip() == "active"
        rows = check_json(node1, bundle_dir)
        fp = next(r for r in rows if r["host"] == node1.ip and r["name"] == "front-proxy-client")
        assert fp["days"] > 300 and fp["status"] == "ok"
        assert all(r["days"] > 300 for r in rows if r["source"] in ("kubeadm", "registry"))
        record = json.loads(node1.read_file("/etc/airgap-bundler/cluster.json"))
        assert record["history"][-1]["operation"] == "certs renew" and record["history"][-1]["result"] == "ok"
        with TIMER.stage("e2e certs: timer --enable, --disable"):
            on = run(node1, f"{cd} certs timer --enable")
            assert on.returncode == 0, on.stdout[-3000:]
            assert node1.sh("systemctl is-active airgap-certs.timer") == "active"
            unit = node1.read_file("/etc/systemd/system/airgap-certs.service")
            assert f"{bundle_dir}/install.py certs renew --within 90 -y" in unit
            off = run(node1, f"{cd} certs timer --disable")
            assert off.returncode == 0, off.stdout[-3000:]
            assert node1.exec(["test", "-e", "/etc/systemd/system/airgap-certs.timer"], check=False).returncode != 0

        with TIMER.stage("e2e certs: backup x3 --keep 2"):
            for _ in range(3):
                bk = run(node1, f"{cd} backup -o {BK} --keep 2")
                assert bk.returncode == 0, bk.stdout[-4000:]
        archives = sorted(node1.sh(f"ls {BK}").split())
        assert len(archives) == 4 and all(a.startswith("airgap-backup-") for a in archives), archives
        kept = sorted(node1.sh("ls /var/lib/airgap-installer/backups").split())
        assert kept == archives  # the control plane's copies, pruned the same way
        archive = f"{BK}/{archives[-2]}"
        assert archive.endswith(".tar.gz") and archives[-1] == archives[-2] + ".sha256"
        assert node1.sh(f"stat -c %a {archive} {archive}.sha256").split() == ["600", "600"]
        node1.sh(f"cd {BK} && sha256sum -c {archives[-1]}")
        members = node1.sh(f"tar tzf {archive}").split()
        for m in ("meta.json", "etcd/snapshot.db", "pki.tar.gz", "cluster.json", f"journals/{node3.ip}.json"):
            assert m in members, members
        saves = [c for c in log(node1, "etcdctl-double.log") if c.get("command") == "snapshot save"]
        assert len(saves) == 3 and saves[-1]["members"] == ["node1", "node2"]
        snap_sha = node1.sh(f"tar xzf {archive} -O etcd/snapshot.db | sha256sum").split()[0]
        assert snap_sha == saves[-1]["sha256"]

        with TIMER.stage("e2e certs: a tampered backup is refused, plan restore changes nothing"):
            node1.sh(f"mkdir -p {BK}-t && cp -a {archive} {archive}.sha256 {BK}-t/ && printf 'X' | dd of={BK}-t/"
                     f"{archives[-2]} bs=1 seek=100 conv=notrunc 2>/dev/null")
            before = {n.name: sums(n) for n in rig.nodes}
            bad = run(node1, f"{cd} restore {BK}-t/{archives[-2]} -y")
            assert bad.returncode != 0 and "does not match its checksum" in bad.stdout, bad.stdout[-3000:]
            assert "nothing was changed" in bad.stdout and "Traceback" not in bad.stdout
            plan = run(node1, f"{cd} plan restore {archive}")
            assert plan.returncode == 0, plan.stdout[-3000:]
            assert {n.name: sums(n) for n in rig.nodes} == before
            assert "restore preflight OK" in plan.stdout
            for ip in (node1.ip, node2.ip):
                assert f"[{ip}] stopped: stop the control-plane static pods" in plan.stdout, plan.stdout[-3000:]
            assert node1.exec(["test", "-e", "/etc/airgap-bundler/lock"], check=False).returncode != 0

        with TIMER.stage("e2e certs: restore"):
            crictl1 = len(log(node1, "crictl-double.log"))
            restored = run(node1, f"{cd} restore {archive} -y")
        assert restored.returncode == 0, restored.stdout[-6000:]
        for node in (node1, node2):
            rs = [c for c in log(node, "etcdctl-double.log") if c.get("command") == "snapshot restore"]
            assert len(rs) == 1, rs
            assert rs[0]["name"] == node.name and rs[0]["peerURLs"] == [f"https://{node.ip}:2380"]
            assert rs[0]["initialCluster"] == {"node1": f"https://{node1.ip}:2380", "node2": f"https://{node2.ip}:2380"}
            assert rs[0]["snapshotSha256"] == snap_sha
            info = json.loads(node.read_file("/var/lib/etcd/member/airgap-e2e-restore.json"))
            assert info["name"] == node.name  # the restored data directory was swapped in
        seq = ps_sequence([e for e in log(node1, "crictl-double.log")[crictl1:] if "ps" in e])
        assert seq == [(p, False) for p in reversed(PODS)] + [(p, True) for p in PODS], seq
        assert node1.sh("ls /etc/kubernetes/manifests").split() == sorted(f"{p}.yaml" for p in PODS)
        assert "node3" in node1.sh("kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes")
        record = json.loads(node1.read_file("/etc/airgap-bundler/cluster.json"))
        assert record["history"][-1]["operation"].startswith("restore ") and record["history"][-1]["result"] == "ok"
        again = run(node1, f"{cd} plan restore {archive}")
        assert again.returncode == 0 and "plan restore: nothing left to do" in again.stdout, again.stdout[-3000:]
    finally:
        with TIMER.stage("e2e certs: reset"):
            reset = run(node1, f"{cd} reset -y")
            node1.sh(f"rm -rf {BK} {BK}-t")
            node3.sh("rm -rf /var/lib/kubelet/pki")
            for node in (node1, node2):
                node.sh("rm -rf /var/lib/etcd /var/lib/etcd.*")
    assert reset.returncode == 0, reset.stdout[-3000:]
    assert clean_trap.connections() == [], LeakTrap.describe(clean_trap.connections())
