"""The whole promise, offline: bundle built on the "connected" side, installed on three hosts with no route
out, checked with testinfra, re-run with no changes, reset to the hosts as they were.

kubeadm / kubelet / kubectl / crictl on the hosts are TEST DOUBLES (tests/e2e/content/doubles): they cannot
be had here. They validate what they are given and record it; everything else is the real program.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rig import TIMER, LeakTrap

from tests.e2e import scenario

NODE1 = "192.168.251.11"


def install_cycle(rig, tarball, upstream, runtime: str, check, args: list[str] | None = None,  # noqa: ANN001
                  packages: bool = True) -> str:
    """plan (changes nothing), install, checks, status and plan from the cluster record (no hosts given), second
    run (no changes), reset from the cluster record (hosts as before); returns the first install's output."""
    nodes = list(rig.nodes)
    before = {n.name: scenario.snapshot(n) for n in nodes}
    inits = len(_double_calls(rig.node1, "init"))  # the double's log outlives a reset
    lists = len(_double_calls(rig.node1, "config images list"))
    with TIMER.stage(f"e2e: deliver bundle to node1 ({runtime})"):
        bundle_dir = rig.deliver_bundle(tarball)
        scenario.put_media(rig.node1, upstream)
        rig.node1.exec(["rm", "-f", f"{bundle_dir}/cluster.json"])  # a record of an earlier test's cluster
    args = args or rig.install_args()
    control_planes = args[args.index("--control-plane") + 1].split(",")
    with TIMER.stage(f"e2e: install.py plan ({runtime})"):
        plan = run(rig.node1, scenario.install_command(bundle_dir, args, "plan"))
    assert plan.returncode == 0, plan.stdout
    assert "kubeadm init" in plan.stdout and "change(s)" in plan.stdout
    assert "helm: install /usr/local/bin/helm" in plan.stdout
    if packages:
        assert "packages: install packages: httpd-tools" in plan.stdout, plan.stdout
    assert {n.name: scenario.snapshot(n) for n in nodes} == before  # plan changes nothing
    with TIMER.stage(f"e2e: install.py on 3 hosts ({runtime})"):
        first = run(rig.node1, scenario.install_command(bundle_dir, args))
    assert first.returncode == 0, first.stdout[-6000:]
    with TIMER.stage(f"e2e: testinfra checks ({runtime})"):
        check(bundle_dir)
        check_record_helm_packages(rig, bundle_dir, control_planes, packages)
    with TIMER.stage(f"e2e: status and plan from the cluster record ({runtime})"):
        status = run(rig.node1, f"cd {bundle_dir} && ./install.py status")
        assert status.returncode == 0, status.stdout[-3000:]
        assert "using the cluster record /etc/airgap-bundler/cluster.json (installed, 3 host(s))" in status.stdout
        assert "state installed; last operation: install" in status.stdout
        refused = run(rig.node1, f"cd {bundle_dir} && ./install.py status --pod-subnet {scenario.POD_SUBNET}")
        assert refused.returncode == 2 and "status does not take --pod-subnet" in refused.stdout, refused.stdout
        replan = run(rig.node1, f"cd {bundle_dir} && ./install.py plan")  # media, pod subnet: from the record
        assert replan.returncode == 0 and "plan: no changes" in replan.stdout, replan.stdout[-3000:]
    with TIMER.stage(f"e2e: second run ({runtime})"):
        second = run(rig.node1, scenario.install_command(bundle_dir, args))
    assert second.returncode == 0, second.stdout[-4000:]
    assert "install: no changes" in second.stdout, second.stdout[-3000:]
    assert len(_double_calls(rig.node1, "init")) == inits + 2  # kubeadm init was not called again
    # kubeadm's own image list was checked against the bundle once, before init (and not on the second run)
    assert len(_double_calls(rig.node1, "config images list")) == lists + 1
    with TIMER.stage(f"e2e: reset ({runtime})"):
        reset = run(rig.node1, f"cd {bundle_dir} && ./install.py reset -y")  # the hosts from the cluster record
    assert reset.returncode == 0, reset.stdout[-4000:]
    assert "using the cluster record /etc/airgap-bundler/cluster.json" in reset.stdout
    after = {n.name: scenario.snapshot(n) for n in nodes}
    for name in before:
        assert after[name] == before[name], name
    # the serving host's record went with the rest; the one beside the bundle remembers the hosts
    assert rig.node1.exec(["test", "-e", "/etc/airgap-bundler"], check=False).returncode != 0
    beside = json.loads(rig.node1.read_file(f"{bundle_dir}/cluster.json"))
    assert beside["state"] == "reset" and [h["operation"] for h in beside["history"]][-1] == "reset"
    if packages:
        for node in nodes:
            assert node.exec(["rpm", "-q", "httpd-tools"], check=False).returncode != 0, node.name
    return first.stdout


def check_record_helm_packages(rig, bundle_dir: str, control_planes: list[str], packages: bool) -> None:  # noqa: ANN001
    """The cluster record on node1 and beside the bundle; helm on the control planes only; spec.packages."""
    record = json.loads(rig.node1.read_file("/etc/airgap-bundler/cluster.json"))
    assert record == json.loads(rig.node1.read_file(f"{bundle_dir}/cluster.json"))
    assert record["state"] == "installed" and record["history"][-1]["result"] == "ok"
    assert sorted(h["address"] for h in record["inventory"]["hosts"]) == sorted(n.ip for n in rig.nodes)
    assert record["options"]["media"] == "/mnt/media" and record["options"]["pod_subnet"] == scenario.POD_SUBNET
    assert record["kubernetes"] == "1.30.4"
    for node in rig.nodes:
        helm = node.exec(["sh", "-c", "/usr/local/bin/helm version 2>&1"], check=False)
        if node.ip in control_planes:
            assert helm.returncode == 0 and "test-double" in helm.stdout, helm.stdout
            # root's kubeconfig is there for helm (kubeadm init/join wrote it)
            assert node.exec(["test", "-s", "/root/.kube/config"], check=False).returncode == 0
            log = node.exec(["sh", "-c", "tail -n 1 /var/log/helm-double.log"]).stdout
            assert json.loads(log)["argv"] == ["version"]
        else:
            assert helm.returncode != 0, node.name
        if packages:
            assert node.exec(["rpm", "-q", "httpd-tools"], check=False).returncode == 0, node.name


def run(node, cmd: str, timeout: int = 900):
    return node.exec(["sh", "-c", cmd + " 2>&1"], check=False, timeout=timeout)


def test_install_second_run_and_reset_on_three_hosts(rig, containerd_bundle, upstream, clean_trap):
    tarball, summary = containerd_bundle

    def check(bundle_dir: str) -> None:
        # the upstream images are multi-arch indexes: the bundle carries the amd64 child of each
        bom = json.loads(rig.node1.read_file(f"{bundle_dir}/bundle.json"))
        assert {tuple(i["platforms"]) for i in bom["images"]} == {("linux/amd64",)}
        assert all("index" not in i["mediaType"] for i in bom["images"]), bom["images"]
        for node in rig.nodes:
            host = node.testinfra()
            # packages from the bundle repo (and the media), repo files as specified
            rpms = host.run("rpm -q kubeadm kubelet kubectl containerd.io cri-tools kubernetes-cni")
            assert rpms.rc == 0, rpms.stdout + rpms.stderr
            bundle_repo = host.file("/etc/yum.repos.d/airgap-bundle.repo").content_string
            assert "gpgcheck" in bundle_repo
            expect = "file:///opt/airgap/repo" if node.ip == NODE1 else f"http://{NODE1}:8089/repo"
            assert expect in bundle_repo
            # version pins: the bundle repo hides kubelet & co from dnf (the installer used --disableexcludes)
            assert "exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni containerd.io" in bundle_repo
            hidden = host.run("dnf -q --disablerepo='*' --enablerepo=airgap-bundle repoquery kubelet")
            assert hidden.rc == 0 and hidden.stdout.strip() == "", hidden.stdout + hidden.stderr
            kube = host.run("rpm -q kubelet kubeadm kubectl containerd.io").stdout
            update = host.run("dnf -y --disablerepo='*' --enablerepo='airgap-*' update")
            assert update.rc == 0 and host.run("rpm -q kubelet kubeadm kubectl containerd.io").stdout == kube
            # sysctl, modules, swap
            assert host.file("/etc/sysctl.d/99-airgap-kubernetes.conf").contains("net.ipv4.ip_forward *= *1")
            assert host.run("sysctl -n net.ipv4.ip_forward").stdout.strip() == "1"
            assert host.run("sysctl -n net.bridge.bridge-nf-call-iptables").stdout.strip() == "1"
            modules = host.file("/etc/modules-load.d/airgap-kubernetes.conf").content_string.split()
            assert "overlay" in modules and "br_netfilter" in modules
            assert host.run("tail -n +2 /proc/swaps").stdout.strip() == ""
            # containerd configured and running, mirrors through certs.d
            assert host.service("containerd").is_running
            config = host.file("/etc/containerd/config.toml").content_string
            assert "SystemdCgroup = true" in config and 'config_path = "/etc/containerd/certs.d"' in config
            assert 'sandbox_image = "registry.k8s.io/pause:3.9"' in config  # by its name, served by the mirror
            assert host.file("/etc/containerd/certs.d/registry.k8s.io/hosts.toml").contains(f"{NODE1}:5000")
            # an image by its upstream name, pulled through the mirror config from the local registry
            pull = host.run("crictl pull registry.k8s.io/pause:3.9")
            assert pull.rc == 0, pull.stdout + pull.stderr
            assert "registry.k8s.io/pause:3.9" in host.run("ctr -n k8s.io images ls -q").stdout
            # chrony: node1 serves time, the others sync to it
            chrony = host.file("/etc/chrony.conf").content_string
            if node.ip == NODE1:
                assert "local stratum" in chrony and "allow" in chrony
            else:
                assert f"server {NODE1}" in chrony
                assert _wait(lambda h=host: NODE1 in h.run("chronyc -n sources").stdout, 30)

        # the registry serves over TLS with the installer's CA (checked from a worker against the copied CA)
        worker = rig.nodes.workers()[0].testinfra()
        tls = worker.run(f"curl -sS --cacert /etc/pki/ca-trust/source/anchors/airgap-registry-ca.crt "
                         f"https://{NODE1}:5000/v2/_catalog")
        assert tls.rc == 0 and "repositories" in tls.stdout, tls.stdout + tls.stderr
        assert worker.run(f"curl -sS http://{NODE1}:5000/v2/ -o /dev/null -w '%{{http_code}}'").stdout != "200"

        # the kubeadm double: init with a valid config on node1, join on the others
        init = _double_calls(rig.node1, "init")[-2:]
        assert [c.get("result") for c in init] == [None, "ok"], init  # the call (with its config), then its result
        assert "kubernetesVersion: v1.30.4" in init[0]["config"] and "podSubnet: 10.244.0.0/16" in init[0]["config"]
        for node in rig.nodes.workers():
            joins = [c for c in _double_calls(node, "join") if c.get("result") == "ok"]
            assert joins and joins[-1]["server"] == f"https://{NODE1}:6443", joins

        # no node has a usable nameserver: CoreDNS's forward plugin is removed (the ConfigMap applied after the CNI,
        # then CoreDNS restarted), so cluster DNS still answers cluster names
        assert_coredns(rig, forward=None)

    node3 = rig.nodes["node3"]
    resolv = node3.read_file("/etc/resolv.conf")
    node3.exec(["sh", "-c", ": > /etc/resolv.conf"])  # an air-gapped host without any nameserver
    try:
        out = install_cycle(rig, tarball, upstream, "containerd", check)
    finally:
        node3.write_file("/etc/resolv.conf", resolv)
    # node3's is empty; node1 and node2 have only docker's embedded resolver 127.0.0.11, which inside the CoreDNS
    # pod would be CoreDNS itself: none of the three counts
    nodes = ", ".join(n.ip for n in rig.nodes)
    assert f"no usable nameserver in /etc/resolv.conf on {nodes}: CoreDNS will answer cluster names only" in out
    # nothing on any host tried to reach the real upstream
    assert clean_trap.connections() == [], LeakTrap.describe(clean_trap.connections())
    print(f"\nbundler build summary:\n{summary}")


def test_docker_runtime_as_the_seed_set_it_up(rig, docker_bundle, upstream, clean_trap):
    """The seed's docker setup, here with two control planes (node1, node2) and one worker: the second control
    plane joins with the certificates node1 uploaded (`--upload-certs`)."""
    tarball, _ = docker_bundle
    node1, node2, node3 = rig.nodes.nodes
    uploads = len(_double_calls(node1, "init phase upload-certs"))

    def check(bundle_dir: str) -> None:
        for node in rig.nodes:
            host = node.testinfra()
            daemon = json.loads(host.file("/etc/docker/daemon.json").content_string)
            assert daemon["exec-opts"] == ["native.cgroupdriver=systemd"]
            assert daemon["log-driver"] == "json-file" and daemon["log-opts"] == {"max-size": "100m"}
            assert daemon["storage-driver"] == "overlay2"
            assert daemon["registry-mirrors"] == [f"https://{NODE1}:5000"]
            assert host.service("docker").is_running and host.service("cri-docker").is_running
            assert host.run("rpm -q docker-ce cri-dockerd kubeadm").rc == 0
            # docker.io images by their short names come through the registry mirror from the local registry
            pull = host.run("env -u DOCKER_HOST docker pull calico/node:v3.28.1")
            assert pull.rc == 0, pull.stdout + pull.stderr
        init = _double_calls(rig.node1, "init")[-2:]
        assert init[-1].get("result") == "ok" and "cri-dockerd.sock" in init[0]["config"]
        assert len(_double_calls(node1, "init phase upload-certs")) == uploads + 1
        # the apiserver double admits a control-plane join only with the key node1 uploaded
        cp_join = [c for c in _double_calls(node2, "join") if c.get("result") == "ok"][-1]
        assert cp_join.get("controlPlane") is True, cp_join
        worker_join = [c for c in _double_calls(node3, "join") if c.get("result") == "ok"][-1]
        assert not worker_join.get("controlPlane"), worker_join

        assert_coredns(rig, forward="192.168.251.250")

    out = install_cycle(rig, tarball, upstream, "docker", check,
                        args=["--control-plane", f"{node1.ip},{node2.ip}", "--workers", node3.ip,
                              "--upstream-dns", "192.168.251.250"])
    assert "CoreDNS will forward names outside the cluster to 192.168.251.250 (--upstream-dns)" in out
    assert f"2 control planes share the API endpoint {node1.ip}:6443" in out  # no load balancer: said up front
    assert clean_trap.connections() == [], LeakTrap.describe(clean_trap.connections())


def assert_coredns(rig, forward: str | None) -> None:  # noqa: ANN001
    """The CoreDNS ConfigMap the kubectl double received on node1, and the order of the installer's calls:
    CNI manifest applied, then the ConfigMap, then `rollout restart deployment coredns` in kube-system."""
    text = rig.node1.exec(["sh", "-c", "cat /var/log/kubectl-double.log"]).stdout
    calls = [json.loads(line) for line in text.splitlines() if line.strip()]
    argvs = [c.get("argv") or [] for c in calls]
    last_cni = max(i for i, a in enumerate(argvs) if a[-2:] == ["-f", "/etc/kubernetes/airgap/cni.yaml"])
    last_cm = max(i for i, a in enumerate(argvs) if a[-2:] == ["-f", "/etc/kubernetes/airgap/coredns.yaml"])
    assert argvs[last_cm] == ["--kubeconfig", "/etc/kubernetes/admin.conf", "apply", "-f",
                              "/etc/kubernetes/airgap/coredns.yaml"]
    assert argvs[last_cm + 2] == ["--kubeconfig", "/etc/kubernetes/admin.conf", "-n", "kube-system", "rollout",
                                  "restart", "deployment", "coredns"]
    assert last_cni < last_cm
    received = calls[last_cm + 1]  # the double's record of the ConfigMap it applied
    assert received["event"] == "applied-configmaps" and len(received["documents"]) == 1
    corefile = received["documents"][0]
    assert "name: coredns" in corefile and "kubernetes cluster.local in-addr.arpa ip6.arpa" in corefile
    if forward is None:
        assert "forward" not in corefile
    else:
        assert f"forward . {forward} {{" in corefile


def _double_calls(node, verb: str) -> list[dict]:
    text = node.exec(["sh", "-c", "cat /var/log/kubeadm-double.log 2>/dev/null"], check=False).stdout
    calls = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [c for c in calls if c.get("command") == verb]


def _wait(pred, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(1)
    return False


def test_manifest_paths_are_real_upstream_shaped(upstream, tmp_path):
    """The manifest a user would write: real upstream URLs only through mirrors and repo baseurls."""
    text = scenario.write_manifest(upstream, tmp_path / "m.yaml").read_text()
    assert "registry.k8s.io" in text and "download.docker.com/linux/centos/9/x86_64/stable" in text
    assert Path(upstream.content.repos["media"], ".treeinfo").is_file()


def test_binary_install_mode_lays_down_binaries_and_units(rig, binaries_bundle, upstream, clean_trap):
    """`install: binaries`: no runtime/kube RPMs; the installer unpacks the bundle's binaries and writes units."""
    tarball, _ = binaries_bundle

    def check(bundle_dir: str) -> None:
        for node in rig.nodes:
            host = node.testinfra()
            for b in ("kubeadm", "kubelet", "kubectl", "crictl", "containerd", "containerd-shim-runc-v2", "runc",
                      "ctr"):
                f = host.file(f"/usr/local/bin/{b}")
                assert f.is_file and f.mode & 0o111, b
            assert host.run("rpm -q kubeadm containerd.io").rc != 0  # nothing of that came as an RPM
            assert host.file("/opt/cni/bin/bridge").is_file
            assert "/usr/local/bin/containerd" in host.file("/etc/systemd/system/containerd.service").content_string
            assert host.service("containerd").is_running and host.service("kubelet").is_enabled
            assert host.run("rpm -q --whatprovides conntrack socat").rc == 0  # the hosts' deps, from the media
            pull = host.run("crictl pull registry.k8s.io/pause:3.9")
            assert pull.rc == 0, pull.stdout + pull.stderr
        init = _double_calls(rig.node1, "init")[-2:]
        assert init[-1].get("result") == "ok"

    install_cycle(rig, tarball, upstream, "binaries", check, packages=False)
    assert clean_trap.connections() == [], LeakTrap.describe(clean_trap.connections())
