"""doctor: its classifiers on recorded real outputs (tests/installer/fixtures/doctor/, sources in SOURCES.md),
a whole run against fake connections (healthy, then faults), the read-only guard, the report's forms and the
support bundle."""

import json
import os
import stat
import tarfile

import pytest

from installer.context import Context
from installer.doctor import cluster, collect, nodes, pods, services
from installer.doctor.env import Env, is_read
from installer.doctor.findings import Report
from installer.inventory import from_flags
from installer.ssh import Result

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "doctor")


def fixture(*parts):
    with open(os.path.join(FIX, *parts)) as f:
        return f.read()


def ids(found):
    return [f.id for f in found]


# -- kubelet journal ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,expected", [
    ("expired-cert.log", "KUBELET-CERT-EXPIRED"),
    ("cgroup-driver.log", "KUBELET-CGROUP-DRIVER-MISMATCH"),
    ("swap-on.log", "KUBELET-SWAP-ON"),
    ("cni-not-initialized.log", "KUBELET-CNI-NOT-INITIALIZED"),
    ("cni-uninitialized-docker.log", "KUBELET-CNI-NOT-INITIALIZED"),
    ("sandbox-image.log", "KUBELET-SANDBOX-IMAGE-PULL-FAILED"),
    ("node-not-found.log", "KUBELET-NODE-NOT-FOUND"),
    ("node-not-found-old.log", "KUBELET-NODE-NOT-FOUND"),
])
def test_kubelet_journal_is_classified(name, expected):
    found = nodes.classify_journal(fixture("kubelet-journal", name), "10.0.0.11")
    assert ids(found) == [expected]
    f = found[0]
    assert f.severity == "error" and f.target == "10.0.0.11" and f.fix
    assert f.evidence[0].command.startswith("journalctl -u kubelet")
    assert f.evidence[0].excerpt and f.evidence[0].excerpt in fixture("kubelet-journal", name)


def test_a_healthy_journal_has_no_finding():
    assert nodes.classify_journal(fixture("kubelet-journal", "healthy.log"), "n") == []


def test_only_the_journal_since_kubelet_last_started_counts():
    fixed = fixture("kubelet-journal", "swap-on.log") + fixture("kubelet-journal", "healthy.log")
    assert nodes.classify_journal(fixed, "n") == []  # swap turned off, kubelet restarted: fine now
    looping = fixture("kubelet-journal", "healthy.log").splitlines()[0] + "\n" + fixture("kubelet-journal",
                                                                                        "swap-on.log")
    assert ids(nodes.classify_journal(fixed + looping, "n")) == ["KUBELET-SWAP-ON"]


# -- pods ---------------------------------------------------------------------------------------------------------
REFS = ["registry.k8s.io/pause:3.9", "registry.k8s.io/coredns/coredns:v1.11.1", "docker.io/library/centos:latest"]


def test_image_pull_x509_points_at_the_trust_store():
    pod = json.loads(fixture("pods", "imagepull-x509.json"))
    events = json.loads(fixture("pods", "imagepull-x509-events.json"))
    image = pod["spec"]["containers"][0]["image"]
    toml = {image: ("cat /etc/containerd/certs.d/quay.io/hosts.toml", "cat: ...: No such file or directory")}
    found = pods.classify_pod(pod, events, "pod/cert-manager/x", "kubectl get pod", "kubectl get events", REFS,
                              "10.0.0.11:5000", {}, "ls: cannot access ...airgap-registry-ca.crt: No such file",
                              None, toml)
    assert ids(found) == ["POD-IMAGE-X509"]
    assert found[0].evidence[-1].command == "cat /etc/containerd/certs.d/quay.io/hosts.toml"
    text = "\n".join(e.excerpt for e in found[0].evidence)
    assert "x509: certificate signed by unknown authority" in text and "No such file" in text
    assert "hosts.toml" in found[0].fix


def test_image_pull_of_an_image_the_bundle_lacks():
    pod = json.loads(fixture("pods", "imagepull-not-in-bundle.json"))
    found = pods.classify_pod(pod, None, "pod/registry/private-reg-test", "kubectl get pod", "ev", REFS, "r:5000")
    assert ids(found) == ["POD-IMAGE-NOT-IN-BUNDLE"] and "harbor.registry.example.com" in found[0].summary


def test_image_pull_of_a_bundle_image_missing_from_the_registry():
    pod = json.loads(fixture("pods", "imagepull-not-in-bundle.json"))
    cs = pod["status"]["containerStatuses"][0]
    cs["image"] = pod["spec"]["containers"][0]["image"] = "10.0.0.11:5000/registry.k8s.io/coredns/coredns:v1.11.1"
    found = pods.classify_pod(pod, None, "pod/x/y", "kubectl get pod", "ev", REFS, "10.0.0.11:5000",
                              {"registry.k8s.io/coredns/coredns:v1.11.1": "404"})
    assert ids(found) == ["POD-IMAGE-NOT-IN-REGISTRY"]
    assert found[0].evidence[-1].excerpt == "404 registry.k8s.io/coredns/coredns:v1.11.1"


def test_crashloop_shows_the_exit_code_and_previous_log():
    pod = json.loads(fixture("pods", "crashloop.json"))
    logs = {"centos-new": ("kubectl logs centos-new-6846f658db-w4qhj -c centos-new --previous", "bye\n")}
    found = pods.classify_pod(pod, None, "pod/default/centos-new", "kubectl get pod", "ev", REFS, "r", None, None,
                              logs)
    assert ids(found) == ["POD-CRASHLOOP"]
    assert "exit code 0, Completed; 6 restarts" in found[0].summary
    assert found[0].evidence[1].command.endswith("--previous") and found[0].evidence[1].excerpt == "bye"


def test_pending_pod_quotes_the_scheduler():
    pod = json.loads(fixture("pods", "pending-taint.json"))
    events = json.loads(fixture("pods", "pending-taint-events.json"))
    nodes_json = {"items": [{"metadata": {"name": "cp1"}, "spec": {"taints": [
        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}}, {"metadata": {"name": "w1"}}]}
    taints = ("kubectl get nodes -o json", pods.node_taints(nodes_json))
    found = pods.classify_pod(pod, events, "pod/default/web", "kubectl get pod", "kubectl get events", REFS, "r",
                              taints=taints)
    assert ids(found) == ["POD-UNSCHEDULABLE"]
    assert found[0].evidence[-1].excerpt == "cp1: node-role.kubernetes.io/control-plane:NoSchedule\nw1: no taints"
    assert "untolerated taint {node-role.kubernetes.io/control-plane: }" in found[0].evidence[0].excerpt
    assert "toleration" in found[0].fix and "FailedScheduling" in found[0].evidence[1].excerpt


# -- services -----------------------------------------------------------------------------------------------------
SVC = {"metadata": {"name": "kube-dns", "namespace": "kube-system"},
       "spec": {"clusterIP": "10.96.0.10", "selector": {"k8s-app": "kube-dns"},
                "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                          {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]}}
READY = [("10.244.0.3", 53, "dns"), ("10.244.0.4", 53, "dns")]


def test_kube_proxy_rules_that_match_the_endpoints_are_fine():
    assert services.classify_iptables(fixture("iptables-nat-kube-dns.txt"), "", SVC, READY, "svc", "h") == []


def test_a_service_chain_without_endpoint_chains():
    nat = "\n".join(ln for ln in fixture("iptables-nat-kube-dns.txt").splitlines()
                    if not ln.startswith("-A KUBE-SVC-TCOU7JCQXEZGVUNU"))
    found = services.classify_iptables(nat, "", SVC, READY, "service/kube-system/kube-dns", "10.0.0.12")
    assert ids(found) == ["SVC-IPTABLES-NO-BACKENDS"]
    assert "KUBE-SVC-TCOU7JCQXEZGVUNU" in found[0].evidence[0].excerpt and found[0].evidence[0].where == "10.0.0.12"


def test_missing_and_stale_service_rules():
    nat = "\n".join(ln for ln in fixture("iptables-nat-kube-dns.txt").splitlines() if "10.96.0.10" not in ln)
    assert ids(services.classify_iptables(nat, "", SVC, READY, "s", "h")) == ["SVC-IPTABLES-MISSING"]
    moved = [("10.244.0.9", 53, "dns")]
    assert ids(services.classify_iptables(fixture("iptables-nat-kube-dns.txt"), "", SVC, moved, "s", "h")) == \
        ["SVC-IPTABLES-STALE"]
    reject = '-A KUBE-SERVICES -d 10.96.0.10/32 -p udp -m comment --comment "kube-system/kube-dns:dns has no ' \
             'endpoints" -m udp --dport 53 -j REJECT --reject-with icmp-port-unreachable'
    assert services.classify_iptables(nat, reject, SVC, [], "s", "h") == []  # kube-proxy agrees: no endpoints


def test_ipvs_virtual_servers():
    text = fixture("ipvsadm-Ln.txt")
    svc = {"spec": {"clusterIP": "10.254.0.2", "ports": [{"port": 53, "protocol": "TCP"},
                                                         {"port": 53, "protocol": "UDP"}]}}
    ready = [("10.253.7.5", 53, "dns"), ("10.253.35.5", 53, "dns")]
    found = services.classify_ipvs(text, svc, ready, "service/kube-system/kube-dns", "h", "ipvsadm -Ln")
    assert ids(found) == ["SVC-IPVS-MISSING"] and "UDP 10.254.0.2:53" in found[0].summary  # this dump has no UDP
    svc["spec"]["ports"] = svc["spec"]["ports"][:1]
    assert services.classify_ipvs(text, svc, ready, "s", "h", "ipvsadm -Ln") == []
    assert ids(services.classify_ipvs(text, svc, [("10.253.9.9", 53, "dns")], "s", "h", "c")) == ["SVC-IPVS-STALE"]


def test_selector_endpoints_and_target_port():
    pods_json = {"items": [{"metadata": {"name": "coredns-0", "labels": {"k8s-app": "kube-dns"}},
                            "spec": {"containers": [{"ports": [{"name": "dns", "containerPort": 53}]}]},
                            "status": {"conditions": [{"type": "Ready", "status": "False"}]}}]}
    found = services.classify_service(SVC, {"subsets": [{"notReadyAddresses": [{"ip": "10.244.0.3"}]}]},
                                      pods_json, "service/kube-system/kube-dns", "kubectl get service")
    assert ids(found) == ["SVC-NO-ENDPOINTS"] and "1 pod(s) match k8s-app=kube-dns, 0 ready" in found[0].summary
    named = json.loads(json.dumps(SVC))
    named["spec"]["ports"][0]["targetPort"] = "dns-udp"
    found = services.classify_service(named, {"subsets": [{"addresses": [{"ip": "10.244.0.3"}],
                                                           "ports": [{"port": 53}]}]}, pods_json, "s", "k")
    assert ids(found) == ["SVC-TARGETPORT-MISMATCH"]


@pytest.mark.parametrize("name,fails", [("nslookup-ok.txt", False), ("nslookup-timeout.txt", True),
                                        ("nslookup-busybox-fail.txt", True)])
def test_dns_lookups(name, fails):
    found = services.classify_lookup(fixture(name), "10.0.0.12", "service 10.96.0.10", "service", "nslookup ...")
    assert ids(found) == (["DNS-LOOKUP-FAILED"] if fails else [])


def test_dns_option_looks_up_against_the_service_and_each_coredns_pod(bundle):
    env, conns = fake_env(bundle)
    found = services.check(env, {}, None, dns=True)
    lookups = [c for c in conns["10.0.0.12"].commands if "nslookup" in c]
    assert len(lookups) == 3 and any("10.96.0.10" in c for c in lookups)  # the service and the two pods
    assert [f.id for f in found if f.severity != "info"] == []


# -- nodes: CNI, certificates, kernel -----------------------------------------------------------------------------
def test_cni_config_missing_with_the_runtime_s_own_words():
    found = nodes.classify_cni("", fixture("crictl-info-cni-not-ready.json"), "10.0.0.12")
    assert ids(found) == ["NODE-CNI-CONFIG-MISSING"]
    assert "cni plugin not initialized" in found[0].evidence[1].excerpt
    assert nodes.classify_cni("10-calico.conflist\n", '{"status": {"conditions": []}}', "h") == []


def test_certificate_expiry():
    now = 1764567000  # 2025-12-01
    text = ("/etc/kubernetes/pki/apiserver.crt notAfter=Dec 11 05:30:00 2025 GMT\n"
            "/etc/kubernetes/pki/ca.crt notAfter=Nov 29 05:30:00 2035 GMT\n"
            "/etc/kubernetes/pki/front-proxy-client.crt notAfter=Nov 20 05:30:00 2025 GMT\n"
            "/etc/airgap-registry/pki/registry.crt notAfter=Feb 20 05:30:00 2026 GMT\n%d\n" % now)
    found = cluster.classify_cert_dates(text, "10.0.0.11", "openssl x509 -noout -enddate")
    assert [(f.id, f.severity, f.target.split(":", 1)[1]) for f in found] == [
        ("CERT-EXPIRING", "error", "/etc/kubernetes/pki/apiserver.crt"),
        ("CERT-EXPIRED", "error", "/etc/kubernetes/pki/front-proxy-client.crt"),
        ("CERT-EXPIRING", "warning", "/etc/airgap-registry/pki/registry.crt")]
    assert found[0].summary == "the certificate expires in 10 day(s)" and "notAfter=" in found[0].evidence[0].excerpt
    assert "certs renew" in found[2].fix
    assert found[1].evidence[0].command == "openssl x509 -noout -enddate /etc/kubernetes/pki/front-proxy-client.crt"


def test_kubeadm_check_expiration_covers_the_kubeconfig_files():
    text = fixture("kubeadm-check-expiration.txt")
    now = 1712000000  # 2024-04-01: 8 days before the kubeconfigs' certificates expire
    found = cluster.classify_check_expiration(text, now, "10.0.0.11")
    assert [(f.id, f.severity, f.target) for f in found] == [
        ("CERT-EXPIRING", "error", "10.0.0.11:/etc/kubernetes/%s" % n)
        for n in ("admin.conf", "controller-manager.conf", "scheduler.conf")]
    assert found[0].evidence[0].command == "kubeadm certs check-expiration"
    assert found[0].evidence[0].excerpt.startswith("admin.conf                 Apr 09, 2024 09:17 UTC")
    assert ids(cluster.classify_check_expiration(text, now + 30 * 86400, "h")) == ["CERT-EXPIRED"] * 3
    assert cluster.classify_check_expiration(text, now - 200 * 86400, "h") == []


def test_static_pods_against_kubeadm_config_and_version_skew():
    text = "/etc/kubernetes/manifests/kube-apiserver.yaml     image: registry.k8s.io/kube-apiserver:v1.30.4\n" \
           "/etc/kubernetes/manifests/etcd.yaml image: registry.k8s.io/etcd:3.5.12-0\n"
    assert cluster.classify_static_pods(text, "v1.30.4", "h", "grep", "cm") == []
    assert ids(cluster.classify_static_pods(text, "1.31.0", "h", "grep", "cm")) == ["STATIC-POD-VERSION-SKEW"]
    assert cluster.kubernetes_version_of("kind: ClusterConfiguration\nkubernetesVersion: v1.30.4\n") == "v1.30.4"
    nodes_json = {"items": [{"metadata": {"name": n}, "status": {"nodeInfo": {"kubeletVersion": v}}}
                            for n, v in (("a", "v1.30.4"), ("b", "v1.31.0"), ("c", "v1.29.8"))]}
    found = cluster.classify_skew("v1.30.4", nodes_json, "kubectl get nodes")
    assert [(f.id, f.severity, f.target) for f in found] == [("VERSION-SKEW", "error", "node/b"),
                                                            ("VERSION-SKEW", "info", "node/c")]


def test_readyz():
    ok = "[+]ping ok\n[+]log ok\n[+]etcd ok\nreadyz check passed\n"
    assert cluster.classify_readyz(0, ok, "", "h") == []
    err = ('Error from server (InternalError): an error on the server ("[+]ping ok\\n[+]log ok\\n[-]etcd failed: '
           'reason withheld\\nreadyz check failed") has prevented the request from succeeding')
    found = cluster.classify_readyz(1, "", err, "h")
    assert ids(found) == ["API-NOT-READY"] and found[0].summary.endswith(": etcd")
    refused = "The connection to the server 10.0.0.11:6443 was refused - did you specify the right host or port?"
    assert ids(cluster.classify_readyz(1, "", refused, "h")) == ["API-UNREACHABLE"]
    assert ids(cluster.classify_readyz(None, "", "no control plane answers", None)) == ["API-UNREACHABLE"]


def test_etcd_health_and_alarms():
    ok = (0, '[{"endpoint":"https://127.0.0.1:2379","health":true,"took":"8.5ms"}]', "")
    assert cluster.classify_etcd("node1", ok, (0, "", ""), "h") == []
    bad = (1, '[{"endpoint":"https://127.0.0.1:2379","health":false,"error":"context deadline exceeded"}]', "")
    alarm = (0, "memberID:8211f1d0f64f3269 alarm:NOSPACE\n", "")
    assert ids(cluster.classify_etcd("node1", bad, alarm, "h")) == ["ETCD-UNHEALTHY", "ETCD-ALARM"]


def test_runtime_services_per_runtime_and_version():
    text = "kubelet active\ncontainerd inactive\ndocker active\ncri-docker inactive\n"
    assert ids(nodes.classify_services(text, "h", "containerd")) == ["NODE-RUNTIME-DOWN"]
    assert ids(nodes.classify_services(text, "h", "docker", "1.23.17")) == []  # dockershim: no cri-dockerd
    found = nodes.classify_services(text, "h", "docker", "1.30.4")
    assert ids(found) == ["NODE-RUNTIME-DOWN"] and "cri-docker" in found[0].summary
    assert ids(nodes.classify_services("kubelet failed\ncontainerd active\n", "h", "containerd")) == \
        ["NODE-KUBELET-DOWN"]


def test_kernel_settings_and_clock():
    assert ids(nodes.classify_kernel("net.bridge.bridge-nf-call-iptables 0\nnet.ipv4.ip_forward 1\n", "overlay\n",
                                     "", "", "h", False)) == ["NODE-BR-NETFILTER-MISSING", "NODE-SYSCTL"]
    assert nodes.classify_kernel("net.ipv4.ip_forward 1\n", "bridge-nf-call-iptables\n", "", "", "h", False) == []
    found = nodes.classify_clock("1000045\n", 1000000.2, 1000000.4, "h")
    assert ids(found) == ["NODE-CLOCK-SKEW"] and found[0].severity == "error" and "+45 s" in found[0].summary
    assert ids(nodes.classify_clock("999996\n", 1000000.0, 1000000.2, "h")) == ["NODE-CLOCK-SKEW"]  # a warning
    assert nodes.classify_clock("1000001\n", 1000000.0, 1000000.3, "h") == []
    assert nodes.classify_clock("1000004\n", 1000000.0, 1000008.0, "h") == []  # within a slow round trip


# -- the read-only guard ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cmd", [
    "kubectl --kubeconfig /etc/kubernetes/admin.conf delete pod x",
    "kubectl --kubeconfig /etc/kubernetes/admin.conf -n kube-system exec etcd-n -- etcdctl member remove 1",
    "rm -rf /etc/cni/net.d", "echo x > /etc/hosts", "cat a >> b", "systemctl restart kubelet",
    "sed -i s/a/b/ /etc/fstab", "iptables -F", "cat /etc/hosts; rm -f /x", "curl x && systemctl stop kubelet",
])
def test_writes_are_refused(cmd):
    assert not is_read(cmd)


def test_every_command_doctor_runs_is_a_read(bundle):
    env, conns = fake_env(bundle)
    run_all(env)
    assert env.ran and all(is_read(c) for _, c, _ in env.ran)
    assert all(is_read(c) for _, c in collect.HOST_FILES)


# -- a whole run against fake hosts -------------------------------------------------------------------------------
NOW = 1764567000


class FakeConn:
    is_local = False
    root = "/"

    def __init__(self, label, answers):
        self.label = label
        self.answers = answers
        self.commands = []

    def run(self, cmd, check=True, timeout=None, input=None, binary=False):
        self.commands.append(cmd)
        return self.answers(self.label, cmd)

    def close(self):
        pass


def healthy_answers(faults=()):
    nat = fixture("iptables-nat-kube-dns.txt")
    if "chain" in faults:
        nat = "\n".join(ln for ln in nat.splitlines() if not ln.startswith("-A KUBE-SVC-TCOU7JCQXEZGVUNU"))
    pods_json = {"items": [{"metadata": {"name": "coredns-%d" % i, "namespace": "kube-system",
                                         "labels": {"k8s-app": "kube-dns"}},
                            "spec": {"nodeName": "node1", "containers": [{"name": "coredns", "image": REFS[1],
                                                                          "ports": [{"containerPort": 53}]}]},
                            "status": {"phase": "Running", "podIP": "10.244.0.%d" % (3 + i),
                                       "conditions": [{"type": "Ready", "status": "True"}],
                                       "containerStatuses": [{"name": "coredns", "image": REFS[1], "ready": True,
                                                              "state": {"running": {}}}]}} for i in range(2)]}
    kube = {
        "get --raw '/readyz?verbose'": "[+]ping ok\n[+]etcd ok\nreadyz check passed\n",
        "get --raw /version": '{"gitVersion": "v1.30.4"}',
        "get nodes -o json": json.dumps({"items": [
            {"metadata": {"name": n}, "spec": {}, "status": {"nodeInfo": {"kubeletVersion": "v1.30.4"},
                                                             "conditions": [{"type": "Ready", "status": "True"}]}}
            for n in ("node1", "node2")]}),
        "-n kube-system get configmap kubeadm-config -o json": json.dumps(
            {"data": {"ClusterConfiguration": "kubernetesVersion: v1.30.4\n"}}),
        "-n kube-system get service kube-dns -o json": json.dumps(SVC),
        "-n kube-system get endpoints kube-dns -o json": json.dumps(
            {"subsets": [{"addresses": [{"ip": "10.244.0.3"}, {"ip": "10.244.0.4"}],
                          "ports": [{"name": "dns", "port": 53}]}]}),
        "-n kube-system get pods -o json": json.dumps(pods_json),
        "-n kube-system get pod coredns-0 -o json": json.dumps(pods_json["items"][0]),
    }

    def answer(label, cmd):
        if cmd.startswith("kubectl --kubeconfig /etc/kubernetes/admin.conf "):
            args = cmd.split("admin.conf ", 1)[1]
            if "endpoint health" in args:
                return Result(cmd, 0, '[{"endpoint":"https://127.0.0.1:2379","health":true}]', "")
            if "alarm list" in args or "get events" in args:
                return Result(cmd, 0, "" if "alarm" in args else '{"items": []}', "")
            if args in kube:
                return Result(cmd, 0, kube[args], "")
            return Result(cmd, 1, "", "Error from server (NotFound)")
        if cmd.startswith("export LC_ALL=C"):  # the node probe
            runtime = "inactive" if "runtime" in faults and label == "10.0.0.12" else "active"
            cni = "" if "cni" in faults and label == "10.0.0.12" else "10-calico.conflist"
            return Result(cmd, 0, "\n".join([
                "==> services", "kubelet active", "containerd %s" % runtime, "docker inactive",
                "cri-docker inactive", "firewalld inactive", "==> journal", fixture("kubelet-journal", "healthy.log"),
                "==> cni", cni, "==> crictl", '{"status": {"conditions": [{"type": "RuntimeReady", "status": true},'
                ' {"type": "NetworkReady", "status": %s}]}}' % ("false" if not cni else "true"),
                "==> df", "/dev/sda1 100 50 50 50% /var", "==> swaps",
                "==> sysctl", "net.bridge.bridge-nf-call-iptables 1", "net.ipv4.ip_forward 1",
                "==> modules", "br_netfilter", "==> firewalld", "==> reach_api", "200 rc=0",
                "==> reach_registry", "200 rc=0", "==> reach_repo", "200 rc=0", "==> trust", "ok", "==> end", ""]),
                "")
        if "openssl x509" in cmd:
            end = "Dec 11 05:30:00 2025" if "cert" in faults and label == "10.0.0.11" else "Nov 29 05:30:00 2035"
            return Result(cmd, 0, "/etc/kubernetes/pki/apiserver.crt notAfter=%s GMT\n%d\n" % (end, NOW), "")
        if "/etc/kubernetes/manifests" in cmd:
            return Result(cmd, 0, "/etc/kubernetes/manifests/kube-apiserver.yaml image: %s\n"
                          % "registry.k8s.io/kube-apiserver:v1.30.4", "")
        if "/manifests/" in cmd and "curl" in cmd:  # the registry: one HEAD per bundle image
            refs = [ln.rsplit(" ", 1)[-1].rstrip('"') for ln in cmd.split("; ")]
            return Result(cmd, 0, "\n".join("%s %s" % ("404" if "image" in faults and "pause" in r else "200", r)
                                            for r in refs), "")
        if cmd == "date +%s":
            import time
            return Result(cmd, 0, "%d\n" % (time.time() + (60 if "clock" in faults and label == "10.0.0.12" else 0)),
                          "")
        if "nslookup" in cmd:
            return Result(cmd, 0, fixture("nslookup-ok.txt"), "")
        if cmd.startswith("iptables-save -t nat"):
            return Result(cmd, 0, nat, "")
        if cmd.startswith("iptables-save -t filter") or cmd.startswith("conntrack"):
            return Result(cmd, 0, "0\n/usr/sbin/conntrack" if "conntrack" in cmd else "", "")
        return Result(cmd, 0, "", "")
    return answer


def fake_env(bundle, faults=()):
    inv = from_flags("10.0.0.11", "10.0.0.12", "root", 22, None)
    ctx = Context(bundle, inv)
    ctx.recorded_names = {"10.0.0.11": "node1", "10.0.0.12": "node2"}
    answers = healthy_answers(faults)
    conns = dict((h.label, FakeConn(h.label, answers)) for h in inv.hosts)
    return Env(ctx, conns, {}, {}), conns


def run_all(env, pod="kube-system/coredns-0", service="kube-system/kube-dns"):
    state, report = {}, Report()
    report.extend(cluster.check(env, state))
    report.extend(nodes.check(env, state))
    report.extend(pods.check(env, state, pod))
    report.extend(services.check(env, state, service))
    report.checked = ["cluster", "nodes", "pods", "services"]
    report.commands = len(env.ran)
    return report


def test_a_healthy_cluster_has_no_error(bundle):
    env, _ = fake_env(bundle)
    report = run_all(env)
    assert report.exit_code == 0, report.render()
    assert [f.id for f in report.findings if f.severity != "info"] == []


def test_faults_are_found_with_their_evidence(bundle):
    env, _ = fake_env(bundle, faults=("runtime", "cni", "image", "chain", "cert", "clock"))
    report = run_all(env)
    assert report.exit_code == 1
    got = dict(((f.id, f.target), f) for f in report.findings if f.severity == "error")
    assert "containerd inactive" in got[("NODE-RUNTIME-DOWN", "10.0.0.12")].evidence[0].excerpt
    assert ("NODE-CNI-CONFIG-MISSING", "10.0.0.12") in got
    assert got[("NODE-CLOCK-SKEW", "10.0.0.12")].summary.startswith(("the clock is +59 s", "the clock is +60 s"))
    missing = got[("REGISTRY-IMAGE-MISSING", "registry.k8s.io/pause:3.9")]
    assert missing.evidence[0].command.endswith("https://10.0.0.11:5000/v2/registry.k8s.io/pause/manifests/3.9")
    assert ("SVC-IPTABLES-NO-BACKENDS", "service/kube-system/kube-dns@10.0.0.11") in got
    assert got[("CERT-EXPIRING", "10.0.0.11:/etc/kubernetes/pki/apiserver.crt")].summary.endswith("10 day(s)")
    # runbook order: cluster, nodes, then services
    layers = [f.layer for f in report.ordered()]
    assert layers == sorted(layers, key=["cluster", "nodes", "pods", "services"].index)
    doc = json.loads(report.to_json())
    assert doc["schema"] == "airgap-doctor/1" and doc["exit_code"] == 1 and doc["summary"]["error"] >= 5
    assert set(doc["findings"][0]) == {"id", "severity", "layer", "target", "summary", "evidence", "fix"}
    text = report.render()
    assert "ERROR   NODE-RUNTIME-DOWN  10.0.0.12" in text and "fix: systemctl start containerd" in text


def test_an_unreachable_host_is_a_finding_not_a_stop(bundle):
    env, conns = fake_env(bundle)
    del env.connections["10.0.0.12"]
    env.unreachable["10.0.0.12"] = "host 10.0.0.12:22 is unreachable"
    report = run_all(env)
    assert ("NODE-UNREACHABLE", "10.0.0.12") in [(f.id, f.target) for f in report.findings]


# -- collect ------------------------------------------------------------------------------------------------------
def test_support_bundle_is_0600_atomic_redacted_and_listed(bundle, tmp_path):
    env, _ = fake_env(bundle)
    report = run_all(env)
    out = tmp_path / "support.tar.gz"
    path, n = collect.collect(env, report, str(out), str(tmp_path / "root"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p for p in os.listdir(str(tmp_path)) if p.startswith(".")] == []  # no temporary left
    with tarfile.open(path) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("doctor-collect/MANIFEST.json").read().decode())
    assert len(names) == n and "doctor-collect/doctor.json" in names
    assert "doctor-collect/hosts/10.0.0.12/iptables-nat.txt" in names and "doctor-collect/bundle.json" in names
    assert {m["name"] for m in manifest["members"]} == {x[len("doctor-collect/"):] for x in names} - {"MANIFEST.json"}
    secret = {"items": [{"metadata": {"name": "s", "annotations": {
        "kubectl.kubernetes.io/last-applied-configuration": "{\"data\": {\"password\": \"aHVudGVyMg==\"}}"}},
        "data": {"password": "aHVudGVyMg=="}, "stringData": {"token": "abc"}}]}
    log = b"12:00:01 $ htpasswd -nbB airgap-push s3cr3t\n12:00:02 $ kubeadm join --token abcdef.0123456789abcdef x\n"
    assert collect.redact_log(log) == (b"12:00:01 $ htpasswd -nbB airgap-push REDACTED\n"
                                       b"12:00:02 $ kubeadm join --token REDACTED x\n")
    red = collect.redact_secrets(json.dumps(secret))
    assert "aHVudGVyMg" not in red and "abc" not in red and '"password": "REDACTED"' in red


def test_collect_into_a_missing_directory_is_a_clear_error(tmp_path):
    from installer.errors import InstallerError
    with pytest.raises(InstallerError) as e:
        collect.Bundle().write(str(tmp_path / "nope" / "x.tar.gz"))
    assert "does not exist" in str(e.value)


# -- the command --------------------------------------------------------------------------------------------------
def test_doctor_without_a_cluster_record_says_so(tmp_path, capsys):
    from installer import cli
    code = cli.main(["doctor", "--root", str(tmp_path), "--bundle", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and "doctor needs the cluster record" in err and "Traceback" not in err


def test_bad_pod_argument(tmp_path, capsys):
    from installer import cli
    assert cli.main(["doctor", "--pod", "a/b/c", "--root", str(tmp_path)]) == 1
    assert "expected NAMESPACE/NAME" in capsys.readouterr().err


def test_the_command_prints_json_collects_and_exits_1_on_errors(bundle, tmp_path, capsys, monkeypatch):
    from installer import cli
    from installer.doctor import run as doctor_run
    env, _ = fake_env(bundle, faults=("runtime",))
    monkeypatch.setattr(doctor_run, "run", lambda args, say: (env, run_all(env), None))
    out = tmp_path / "s.tar.gz"
    code = cli.main(["doctor", "--json", "--collect", str(out), "--root", str(tmp_path)])
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert code == 1 == doc["exit_code"] and doc["cluster"]["collect"] == str(out)
    assert "support bundle: %s" % out in captured.err  # notes go to stderr with --json
    assert out.exists()
    env, _ = fake_env(bundle)
    monkeypatch.setattr(doctor_run, "run", lambda args, say: (env, run_all(env), None))
    assert cli.main(["doctor", "--root", str(tmp_path)]) == 0
    assert "doctor: 0 error(s)" in capsys.readouterr().out


def test_connect_keeps_going_when_a_host_does_not_answer(tmp_path):
    import shutil

    from installer.doctor import run as doctor_run
    from installer.inventory import Host
    from installer.output import Output
    if shutil.which("ssh") is None:
        pytest.skip("no ssh client")
    here, dead = Host("127.0.0.1", "control_plane"), Host("127.0.0.1", "worker", port=1, name="dead")
    here.local = True

    class R:
        root, parallel, out = str(tmp_path), 4, Output(root=str(tmp_path), read_only=True, quiet=True)
    conns, down = doctor_run.connect(R, [here, dead])
    assert list(conns) == [here.label] and list(down) == [dead.label]
    assert "refused" in down[dead.label] or "unreachable" in down[dead.label] or "failed" in down[dead.label]


def test_every_finding_id_is_documented():
    import re
    here = os.path.join(os.path.dirname(FIX), "..", "..", "..")
    code = ""
    for name in ("cluster", "nodes", "pods", "services"):
        with open(os.path.join(here, "installer", "doctor", name + ".py")) as f:
            code += f.read()
    found = set(re.findall(r'finding\("([A-Z0-9-]+)"', code)) | set(f[0] for f in nodes.JOURNAL_CLASSES)
    found |= {"NODE-DISK-PRESSURE", "NODE-MEMORY-PRESSURE", "NODE-PID-PRESSURE"}
    found |= set(re.findall(r'"(NODE-DISK-(?:FULL|LOW))"', code))
    with open(os.path.join(here, "docs", "installer.md")) as f:
        docs = f.read()
    assert len(found) > 50
    assert sorted(i for i in found if "`%s`" % i not in docs) == []
