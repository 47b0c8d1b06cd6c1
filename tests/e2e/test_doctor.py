"""doctor on the rig: one install (node1 control plane + node2 worker); doctor on the healthy cluster finds no
error; then host-level faults injected all at once (containerd stopped on node2, node2's CNI configuration
removed, one image's tag deleted from the bundled registry, a KUBE-SVC chain of kube-dns emptied on node2, a
certificate valid 10 days where kubeadm's front-proxy-client.crt is on node1) and doctor names each with its
evidence; restored, doctor is clean again. Every doctor run changes nothing (checksums of host files, the
installer's journals, the cluster record and iptables before and after; the kubectl double was asked only
reads, the kubeadm double only `certs check-expiration`). --collect writes a 0600 support bundle with a
manifest and redacted Secrets.

What the doubles do not run is put in place by the test as the real component would write it: the CNI
configuration calico's install-cni writes, and kube-proxy's iptables rules for kube-dns (10.96.0.10, the
CoreDNS pods' addresses as the kubectl double derives them). kubeadm/kubelet/kubectl/crictl are TEST DOUBLES.
"""

from __future__ import annotations

import json

from rig import TIMER, LeakTrap

from tests.e2e import scenario
from tests.e2e.test_day2 import WATCHED, _kubectl_argvs
from tests.e2e.test_install import _wait as scenario_wait
from tests.e2e.test_install import run

CONFLIST = '{"name": "k8s-pod-network", "cniVersion": "0.3.1", "plugins": [{"type": "bridge"}]}\n'
CNI_FILE = "/etc/cni/net.d/10-calico.conflist"
DNS_IP = "10.96.0.10"
# kube-proxy's nat rules for kube-system/kube-dns (its three ports) with two CoreDNS endpoints
PORTS = (("dns", "udp", 53, "TCOU7JCQXEZGVUNU"), ("dns-tcp", "tcp", 53, "ERIFXISQEP7F7OF4"),
         ("metrics", "tcp", 9153, "JD5MR3NA4I4DYORP"))
ENDPOINTS = ("10.244.0.10", "10.244.0.11")
CERT = "/etc/kubernetes/pki/front-proxy-client.crt"
REPOSITORIES = "/var/lib/airgap-registry/docker/registry/v2/repositories"


def deployment(image: str) -> str:
    return ("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: default\nspec:\n"
            "  replicas: 1\n  template:\n    spec:\n      containers:\n      - name: web\n"
            f"        image: {image}\n")


def pod_waiting(node, name: str) -> str:  # noqa: ANN001
    res = node.exec(["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "get", "pods", "-o", "json"],
                    check=False, timeout=30)
    for p in json.loads(res.stdout or '{"items": []}')["items"]:
        if p["metadata"]["name"] == name:
            return ((p["status"].get("containerStatuses") or [{}])[0].get("state") or {}).get("waiting", {}).get(
                "reason", "")
    return ""


def kube_proxy_rules() -> str:
    chains = [":KUBE-SERVICES - [0:0]"]
    rules = []
    for name, proto, port, h in PORTS:
        svc = f"KUBE-SVC-{h}"
        chains.append(f":{svc} - [0:0]")
        rules.append(f'-A KUBE-SERVICES -d {DNS_IP}/32 -p {proto} -m comment --comment "kube-system/kube-dns:{name} '
                     f'cluster IP" -m {proto} --dport {port} -j {svc}')
        for i, ip in enumerate(ENDPOINTS):
            sep = f"KUBE-SEP-{h[:8]}{i:08d}"
            chains.append(f":{sep} - [0:0]")
            prob = "-m statistic --mode random --probability 0.50000000000 " if i == 0 else ""
            rules.append(f'-A {svc} -m comment --comment "kube-system/kube-dns:{name} -> {ip}:{port}" {prob}-j {sep}')
            rules.append(f"-A {sep} -p {proto} -m {proto} -j DNAT --to-destination {ip}:{port}")
    return "*nat\n" + "\n".join(chains + rules) + "\nCOMMIT\n"


def remove_kube_proxy_rules(node) -> None:  # noqa: ANN001
    node.sh("iptables-save -t nat | grep -o '^:KUBE-[A-Z0-9-]*' | tr -d : > /tmp/kchains; "
            "for c in $(cat /tmp/kchains); do iptables -t nat -F $c; done; "
            "for c in $(cat /tmp/kchains); do iptables -t nat -X $c; done; rm -f /tmp/kchains; true")


def checksums(node) -> str:  # noqa: ANN001
    """What doctor must leave alone: host files, journals, the record, the kubeadm double's log, the PKI, the
    CNI configuration and the iptables rules (without counters)."""
    watched = WATCHED.replace("/var/log/kubectl-double.log ", "").replace("/var/log/kubeadm-double.log ", "")
    return node.sh(f"sha256sum {watched} /etc/kubernetes/pki/*.crt /etc/cni/net.d/* 2>/dev/null; "
                   "iptables-save | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//' | sha256sum; "
                   "ls -A /var/lib/airgap-installer /etc/kubernetes /var/log/airgap-installer 2>/dev/null; true")


def kubeadm_calls(node) -> list[list[str]]:  # noqa: ANN001
    text = node.exec(["sh", "-c", "cat /var/log/kubeadm-double.log 2>/dev/null"], check=False).stdout
    return [json.loads(line).get("argv") or [] for line in text.splitlines() if line.strip()]


def doctor(node1, bundle_dir: str, extra: str = "") -> tuple[int, dict]:  # noqa: ANN001
    with TIMER.stage(f"doctor --json --service kube-system/kube-dns {extra}".strip()):  # its own wall time
        res = node1.exec(["sh", "-c", f"cd {bundle_dir} && ./install.py doctor --json --service kube-system/kube-dns "
                          f"{extra} 2>/tmp/doctor.err"], check=False, timeout=600)
    try:
        return res.returncode, json.loads(res.stdout)
    except ValueError:
        raise AssertionError(f"doctor --json printed no JSON (exit {res.returncode}): {res.stdout[-3000:]}\n"
                             + node1.exec(["cat", "/tmp/doctor.err"], check=False).stdout[-3000:]) from None


def verb(argv: list[str]) -> list[str]:
    """kubectl's words from its verb on (after --kubeconfig FILE and -n NS)."""
    words = argv[2:]
    while words[:1] in (["-n"], ["--namespace"]):
        words = words[2:]
    return words


def by_id(report: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for f in report["findings"]:
        out.setdefault(f["id"], []).append(f)
    return out


def errors(report: dict) -> list[str]:
    return [f"{f['id']} {f['target']}: {f['summary']}" for f in report["findings"] if f["severity"] == "error"]


def test_doctor_finds_injected_faults_and_changes_nothing(rig, containerd_bundle, upstream, clean_trap):
    tarball, _ = containerd_bundle
    node1, node2, _ = rig.nodes.nodes
    with TIMER.stage("e2e doctor: deliver bundle, install node1 + node2"):
        bundle_dir = rig.deliver_bundle(tarball)
        scenario.put_media(node1, upstream)
        node1.exec(["rm", "-f", f"{bundle_dir}/cluster.json"])
        first = run(node1, scenario.install_command(bundle_dir, ["--control-plane", node1.ip, "--workers", node2.ip]))
    assert first.returncode == 0, first.stdout[-6000:]
    # the bundled registry's storage of the CoreDNS image: its tags directory (removed to "delete" the image)
    tags_dir = node1.sh(f"find {REPOSITORIES} -path '*/coredns/_manifests/tags' -type d | head -n 1")
    assert tags_dir, node1.sh(f"find {REPOSITORIES} -maxdepth 3")
    tags = node1.sh(f"ls {tags_dir}").split()
    try:
        for n in (node1, node2):  # what calico's install-cni and kube-proxy would have written
            n.write_file(CNI_FILE, CONFLIST)
            n.exec(["iptables-restore", "--noflush"], input=kube_proxy_rules(), timeout=30)
        with TIMER.stage("e2e doctor: healthy cluster, --collect"):
            sums = {n.name: checksums(n) for n in (node1, node2)}
            before, kubeadm_before = len(_kubectl_argvs(node1)), len(kubeadm_calls(node1))
            code, report = doctor(node1, bundle_dir, "--pod kube-system/coredns-0 --collect /root/support.tar.gz")
            assert code == 0 and not errors(report), errors(report)
            assert {n.name: checksums(n) for n in (node1, node2)} == sums  # doctor changed nothing
            calls = [verb(a) for a in _kubectl_argvs(node1)[before:]]  # the kubectl double asked only reads
            assert calls and all(c[0] == "get" or (c[0] == "exec" and c[1].startswith("etcd-") and
                                                   ("health" in c or "alarm" in c)) for c in calls), calls
            # the kubeadm double logged nothing: doctor asked only `certs check-expiration`, which (read-only,
            # like `token list`) the double does not log
            assert kubeadm_calls(node1)[kubeadm_before:] == []
            assert {"cluster", "nodes", "pods", "services"} <= set(report["checked"])
            ids = by_id(report)
            assert ids["KUBE-PROXY-MODE"][0]["severity"] == "info"
            assert node1.sh("stat -c %a /root/support.tar.gz") == "600"
            members = node1.sh("tar -tzf /root/support.tar.gz").split()
            for m in ("MANIFEST.json", "doctor.json", f"hosts/{node2.ip}/journal-kubelet.txt",
                      f"hosts/{node2.ip}/iptables-nat.txt", "cluster/secrets-redacted.json", "bundle.json",
                      "cluster-record.json", "cluster/events.json"):
                assert f"doctor-collect/{m}" in members, (m, members)
            manifest = json.loads(node1.sh("tar -xzOf /root/support.tar.gz doctor-collect/MANIFEST.json"))
            assert len(manifest["members"]) == len(members) - 1
            assert any("kube-dns" in node1.sh(f"tar -xzOf /root/support.tar.gz doctor-collect/hosts/{node2.ip}/"
                                              "iptables-nat.txt") for _ in (1,))

        with TIMER.stage("e2e doctor: injected faults"):
            node2.sh("systemctl stop containerd")
            node2.sh(f"mv {CNI_FILE} /root/cni.saved")
            node1.sh(f"mv {tags_dir} /root/coredns-tags.saved")
            # a workload whose image (the bundle's CoreDNS, spelt with the registry's address) is now missing from
            # the registry: the kubelet double's pull fails, the pod waits in ErrImagePull
            bom = json.loads(node1.read_file(f"{bundle_dir}/bundle.json"))
            coredns = next(i["ref"] for i in bom["images"] if "/coredns" in i["ref"])
            node1.write_file("/root/web.yaml", deployment(f"{node1.ip}:5000/{coredns}"))
            node1.sh("kubectl --kubeconfig /etc/kubernetes/admin.conf apply -f /root/web.yaml && rm /root/web.yaml")
            assert scenario_wait(lambda: pod_waiting(node1, "web-0") == "ErrImagePull", 90), pod_waiting(node1, "web-0")
            broken = f"KUBE-SVC-{PORTS[0][3]}"
            node2.sh(f"iptables -t nat -F {broken}")  # kube-dns:dns now jumps to a chain with no endpoint
            node1.sh(f"[ -f {CERT} ] && cp -p {CERT} /root/front-proxy-client.crt.saved; true")
            node1.sh(f"openssl req -x509 -newkey rsa:2048 -nodes -keyout /root/fp.key -out {CERT} -days 10 "
                     "-subj /CN=front-proxy-client 2>/dev/null && rm -f /root/fp.key")
            sums = {n.name: checksums(n) for n in (node1, node2)}
            code, report = doctor(node1, bundle_dir, "--pod default/web-0")
            assert {n.name: checksums(n) for n in (node1, node2)} == sums  # changed nothing, faults or not
        ids = by_id(report)
        assert code == 1, report
        runtime = [f for f in ids.get("NODE-RUNTIME-DOWN", []) if f["target"] == node2.ip]
        assert runtime and "containerd" in runtime[0]["evidence"][0]["excerpt"], ids.keys()
        assert "systemctl is-active" in runtime[0]["evidence"][0]["command"]
        cni = [f for f in ids.get("NODE-CNI-CONFIG-MISSING", []) if f["target"] == node2.ip]
        assert cni and cni[0]["evidence"][0]["command"] == "ls -1 /etc/cni/net.d", ids.keys()
        assert not [f for f in ids.get("NODE-CNI-CONFIG-MISSING", []) if f["target"] == node1.ip]
        missing = ids.get("REGISTRY-IMAGE-MISSING", [])
        assert missing and all("coredns" in f["target"] for f in missing), ids.keys()
        assert missing[0]["evidence"][0]["excerpt"].startswith("404 ")
        chain = [f for f in ids.get("SVC-IPTABLES-NO-BACKENDS", []) if f["target"].endswith("@" + node2.ip)]
        assert chain and broken in chain[0]["evidence"][0]["excerpt"], ids.keys()
        assert not [f for f in ids.get("SVC-IPTABLES-NO-BACKENDS", []) if f["target"].endswith("@" + node1.ip)]
        cert = [f for f in ids.get("CERT-EXPIRING", []) if f["target"] == f"{node1.ip}:{CERT}"]
        assert cert and cert[0]["severity"] == "error" and "notAfter=" in cert[0]["evidence"][0]["excerpt"], ids.keys()
        assert cert[0]["summary"] in ("the certificate expires in 9 day(s)", "the certificate expires in 10 day(s)")
        pulled = ids.get("POD-IMAGE-NOT-IN-REGISTRY", [])
        assert pulled and pulled[0]["target"] == "pod/default/web-0", ids.keys()
        assert [e["excerpt"] for e in pulled[0]["evidence"]][-1] == f"404 {coredns}"
        text = run(node1, f"cd {bundle_dir} && ./install.py doctor")  # the human form names them too
        assert text.returncode == 1
        for fid in ("NODE-RUNTIME-DOWN", "NODE-CNI-CONFIG-MISSING", "REGISTRY-IMAGE-MISSING", "CERT-EXPIRING"):
            assert fid in text.stdout, text.stdout[-4000:]
        assert "fix: " in text.stdout and "$ " in text.stdout
    finally:
        with TIMER.stage("e2e doctor: restore, reset"):
            node2.sh("systemctl start containerd; true")
            node2.sh(f"[ -f /root/cni.saved ] && mv /root/cni.saved {CNI_FILE}; true")
            node1.sh(f"[ -d /root/coredns-tags.saved ] && mv /root/coredns-tags.saved {tags_dir}; true")
            saved = "/root/front-proxy-client.crt.saved"
            node1.sh(f"if [ -f {saved} ]; then mv {saved} {CERT}; else rm -f {CERT}; fi")
            for n in (node1, node2):
                n.exec(["iptables-restore", "--noflush"], input=kube_proxy_rules(), check=False, timeout=30)
    try:
        code, report = doctor(node1, bundle_dir)
        assert code == 0 and not errors(report), errors(report)  # restored: clean again
        assert node1.sh(f"ls {tags_dir}").split() == tags
    finally:
        for n in (node1, node2):
            remove_kube_proxy_rules(n)
            n.sh(f"rm -f {CNI_FILE} /root/support.tar.gz /tmp/doctor.err")
        reset = run(node1, f"cd {bundle_dir} && ./install.py reset -y")
    assert reset.returncode == 0, reset.stdout[-3000:]
    assert clean_trap.connections() == [], LeakTrap.describe(clean_trap.connections())
