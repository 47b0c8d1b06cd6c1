"""The e2e upstream content, checked on this machine without the rig (fast; the repos are cached).

* dnf (Debian's, the reference solver) installs the Kubernetes node packages from media + docker-ce +
  kubernetes into an empty installroot;
* the kubeadm double (as installed by that RPM) accepts what installer/render/kubeadm.py writes and
  rejects a typo'd key and an API version this kubeadm does not know;
* the doubles talk to each other: kubeadm init -> kubelet double serving the apiserver double ->
  kubeadm join from a second "host" -> kubectl apply / get nodes / get pods;
* the images are pullable and unpackable (skopeo copy + umoci unpack), the site carries the real
  registry program, and `bundler plan --json` resolves a manifest against all of it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from installer.render.kubeadm import init_config, join_config
from tests.e2e.content import (
    MEDIA_REPOS,
    BuiltRepos,
    build_e2e_repos_cached,
    build_e2e_site,
    push_e2e_images,
    repo_urls,
)
from tests.upstream.http import RepoHTTPServer
from tests.upstream.stack import Stack, k8s_images
from tests.upstream.yumrepos import dnf_install, rpm_qa

NODE_PACKAGES = ["kubeadm-1.30.4", "kubelet-1.30.4", "kubectl-1.30.4", "containerd.io", "cri-tools",
                 "kubernetes-cni", "httpd-tools"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("rpmbuild") or not shutil.which("dnf"),
                                reason="needs root, rpm and dnf (apt-get install rpm createrepo-c dnf)")


def _cache_root(config: pytest.Config) -> Path:
    env = os.environ.get("AIRGAP_E2E_CONTENT_CACHE")
    if env:
        return Path(env)
    return Path(config.cache.mkdir("airgap-e2e-content")) if config.cache else Path("/tmp/airgap-e2e-content")


@pytest.fixture(scope="module")
def repos(request: pytest.FixtureRequest) -> BuiltRepos:
    return build_e2e_repos_cached(_cache_root(request.config))


@pytest.fixture(scope="module")
def served(repos: BuiltRepos) -> Iterator[dict[str, str]]:
    with RepoHTTPServer(repos.root) as server:
        yield repo_urls(server.url)


@pytest.fixture(scope="module")
def installroot(served: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("installroot") / "root"
    ok, out = dnf_install(served, NODE_PACKAGES, installroot=root)
    assert ok, out
    return root


def test_repos_are_laid_out_like_the_real_ones(repos: BuiltRepos) -> None:
    r = repos.repos
    assert (r["media"] / ".treeinfo").read_text().count("version = 9.4") == 2
    for name in ("media-baseos", "media-appstream", "docker-ce", "kubernetes"):
        assert (r[name] / "repodata" / "repomd.xml").exists(), name
    assert r["media-baseos"] == r["media"] / "BaseOS"
    assert str(r["kubernetes"]).endswith("pkgs.k8s.io/core:/stable:/v1.30/rpm")
    assert list((r["kubernetes"] / "x86_64").glob("kubeadm-1.30.4-*.x86_64.rpm"))
    assert list((r["media-appstream"] / "Packages" / "h").glob("httpd-tools-*.rpm"))


def test_dnf_installs_the_node_packages_into_an_empty_root(installroot: Path) -> None:
    names = {n.rsplit("-", 2)[0] for n in rpm_qa(installroot)}
    assert {"kubeadm", "kubelet", "kubectl", "containerd.io", "cri-tools", "kubernetes-cni", "httpd-tools",
            "apr", "apr-util", "conntrack-tools", "iptables-nft", "socat", "ethtool"} <= names
    # real programs where the node has none
    for prog in ("usr/bin/containerd", "usr/bin/runc", "usr/bin/ctr", "opt/cni/bin/bridge", "usr/bin/htpasswd"):
        assert (installroot / prog).read_bytes()[:4] == b"\x7fELF", prog
    assert "containerd container runtime" in (installroot / "usr/lib/systemd/system/containerd.service").read_text()
    assert (installroot / "usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf").exists()
    # the doubles say what they are
    for prog in ("kubeadm", "kubelet", "kubectl", "crictl"):
        head = (installroot / "usr/bin" / prog).read_text()[:400]
        assert "TEST DOUBLE" in head, prog
    out = subprocess.run([sys.executable, str(installroot / "usr/bin/kubeadm"), "--help"], capture_output=True,
                         text=True, timeout=30).stdout
    assert "TEST DOUBLE" in out


def test_the_htpasswd_shipped_makes_bcrypt_hashes(installroot: Path) -> None:
    out = subprocess.run([str(installroot / "usr/bin/htpasswd"), "-nbB", "airgap-push", "s3cret"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.startswith("airgap-push:$2y$"), out


def _kubeadm(installroot: Path, root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KUBE_DOUBLE_ROOT=str(root))
    r = subprocess.run([sys.executable, str(installroot / "usr/bin/kubeadm"), *args], capture_output=True, text=True,
                       timeout=60, env=env)
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_kubeadm_double_accepts_the_installer_config(installroot: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "kubeadm.yaml"
    cfg.write_text(init_config("1.30.4", "192.168.251.11", "node1", pod_subnet="10.244.0.0/16"))
    root = tmp_path / "host"
    r = _kubeadm(installroot, root, "init", "--config", str(cfg), "--ignore-preflight-errors=all")
    assert "kubeadm join 192.168.251.11:6443 --token " in r.stdout
    assert "--discovery-token-ca-cert-hash sha256:" in r.stdout
    for f in ("etc/kubernetes/admin.conf", "etc/kubernetes/kubelet.conf", "etc/kubernetes/pki/ca.crt",
              "etc/kubernetes/manifests/kube-apiserver.yaml", "var/lib/kubelet/config.yaml",
              "var/lib/kubelet/kubeadm-flags.env"):
        assert (root / f).exists(), f
    assert "registry.k8s.io/kube-apiserver:v1.30.4" in (root / "etc/kubernetes/manifests/kube-apiserver.yaml"
                                                        ).read_text()
    log = [json.loads(line) for line in (root / "var/log/kubeadm-double.log").read_text().splitlines()]
    assert log[0]["argv"][:3] == ["init", "--config", str(cfg)] and log[0]["config"] == cfg.read_text()
    # the CA hash the installer computes with openssl is the one kubeadm printed
    ca_hash = subprocess.run(f"openssl x509 -pubkey -in {root}/etc/kubernetes/pki/ca.crt | openssl rsa -pubin "
                             "-outform der 2>/dev/null | openssl dgst -sha256 -hex | sed 's/^.* //'", shell=True,
                             capture_output=True, text=True).stdout.strip()
    assert f"sha256:{ca_hash}" in r.stdout
    token = _kubeadm(installroot, root, "token", "create", "--ttl", "30m").stdout.strip().splitlines()[-1]
    assert len(token) == 23 and token[6] == "."
    images = _kubeadm(installroot, root, "config", "images", "list").stdout.split()
    assert images == k8s_images("1.30.4", "none")
    _kubeadm(installroot, root, "reset", "-f")
    assert not (root / "etc/kubernetes/admin.conf").exists()


@pytest.mark.parametrize("mutate, message", [
    (lambda t: t.replace("podSubnet:", "podSubnett:"), 'unknown field "ClusterConfiguration.networking.podSubnett" '
                                                       '(did you mean "podSubnet"?)'),
    (lambda t: t.replace("cgroupDriver: systemd", "cgroupDriver: system"), "cgroupDriver"),
    (lambda t: t.replace("podSubnet: 10.244.0.0/16", "podSubnet: 10.96.0.0/16"), "overlaps"),
    (lambda t: t.replace("kubernetesVersion: v1.30.4", "kubernetesVersion: v1.31.0"), "newer than kubeadm"),
    (lambda t: t.replace("kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4"), 'no kind "InitConfiguration"'),
    (lambda t: t.replace("criSocket: unix://", "criSocket: "), "unix:// URL"),
])
def test_kubeadm_double_rejects_bad_configs(installroot: Path, tmp_path: Path, mutate, message: str) -> None:
    text = init_config("1.30.4", "192.168.251.11", "node1", pod_subnet="10.244.0.0/16")
    bad = mutate(text)
    assert bad != text
    cfg = tmp_path / "kubeadm.yaml"
    cfg.write_text(bad)
    r = _kubeadm(installroot, tmp_path / "host", "init", "--config", str(cfg), "--ignore-preflight-errors=all",
                 check=False)
    assert r.returncode == 1 and message in r.stderr, r.stderr
    assert not (tmp_path / "host/etc/kubernetes/admin.conf").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_doubles_make_a_cluster_together(installroot: Path, tmp_path: Path) -> None:
    """init on "node1", its kubelet serves the apiserver double, "node2" joins over HTTPS, kubectl sees both."""
    port = _free_port()
    bindir = installroot / "usr/bin"
    n1, n2 = tmp_path / "node1", tmp_path / "node2"
    procs: list[subprocess.Popen[bytes]] = []
    for root in (n1, n2):
        sock = root / "var/run/containerd/containerd.sock"
        sock.parent.mkdir(parents=True)
        socket.socket(socket.AF_UNIX).bind(str(sock))  # a CRI socket that exists
    cfg = tmp_path / "kubeadm.yaml"
    cfg.write_text(init_config("1.30.4", "127.0.0.1", "node1", pod_subnet="10.244.0.0/16", bind_port=port,
                               control_plane_endpoint=f"127.0.0.1:{port}"))
    out = _kubeadm(installroot, n1, "init", "--config", str(cfg), "--ignore-preflight-errors=all").stdout
    join_line = next(line for line in out.splitlines() if line.startswith("kubeadm join"))
    ca_hash = next(line.split()[-1] for line in out.splitlines() if "discovery-token-ca-cert-hash" in line)
    token = join_line.split("--token ")[1].split()[0]

    def kubelet(root: Path) -> None:
        """What systemd runs: kubelet.service + 10-kubeadm.conf with kubeadm-flags.env (empty KUBELET_EXTRA_ARGS)."""
        env_file = (root / "var/lib/kubelet/kubeadm-flags.env").read_text()
        kubeadm_args = shlex.split(env_file.split("=", 1)[1].strip().strip('"'))
        env = dict(os.environ, KUBE_DOUBLE_ROOT=str(root), KUBELET_DOUBLE_HEARTBEAT="0.5")
        procs.append(subprocess.Popen([sys.executable, str(bindir / "kubelet"),
                                       "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
                                       "--kubeconfig=/etc/kubernetes/kubelet.conf",
                                       "--config=/var/lib/kubelet/config.yaml", *kubeadm_args], env=env))

    def kubectl(*args: str) -> str:
        r = subprocess.run([sys.executable, str(bindir / "kubectl"), "--kubeconfig", "/etc/kubernetes/admin.conf",
                            *args], capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, KUBE_DOUBLE_ROOT=str(n1)))
        assert r.returncode == 0, r.stderr
        return r.stdout

    try:
        kubelet(n1)
        deadline = time.monotonic() + 20
        while "node1" not in kubectl_safe(bindir, n1) and time.monotonic() < deadline:
            time.sleep(0.3)
        jcfg = tmp_path / "join.yaml"
        jcfg.write_text(join_config("1.30.4", f"127.0.0.1:{port}", token, ca_hash, "node2", "127.0.0.2"))
        r = _kubeadm(installroot, n2, "join", "--config", str(jcfg), "--ignore-preflight-errors=all")
        assert "has joined" in r.stdout
        flags = (n2 / "var/lib/kubelet/kubeadm-flags.env").read_text()
        assert "--pod-infra-container-image=registry.k8s.io/pause:3.9" in flags and "--node-ip=127.0.0.2" in flags
        bad = tmp_path / "bad.yaml"
        bad.write_text(join_config("1.30.4", f"127.0.0.1:{port}", token, "sha256:" + "0" * 64, "node3", "127.0.0.3"))
        r = _kubeadm(installroot, tmp_path / "node3", "join", "--config", str(bad), "--ignore-preflight-errors=all",
                     check=False)
        assert r.returncode == 1 and "pinned" in r.stderr
        kubelet(n2)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            nodes = json.loads(kubectl("get", "nodes", "-o", "json"))["items"]
            if len(nodes) == 2:
                break
            time.sleep(0.3)
        assert sorted(n["metadata"]["name"] for n in nodes) == ["node1", "node2"]
        # no CNI yet: NotReady, like a real cluster
        assert all(c["status"] == "False" for n in nodes for c in n["status"]["conditions"])
        manifest = tmp_path / "cni.yaml"
        from tests.e2e.content import calico_yaml
        manifest.write_text(calico_yaml())
        applied = kubectl("apply", "-f", str(manifest))
        assert "daemonset/calico-node created" in applied
        nodes = json.loads(kubectl("get", "nodes", "-o", "json"))["items"]
        assert all(c["status"] == "True" for n in nodes for c in n["status"]["conditions"]), nodes
        pods = json.loads(kubectl("-n", "kube-system", "get", "pods", "-o", "json"))["items"]
        names = {p["metadata"]["name"] for p in pods}
        assert {"calico-node-node1", "calico-node-node2", "kube-apiserver-node1", "kube-proxy-node2",
                "calico-kube-controllers-0"} <= names
        # no crictl here: nothing was pulled, so nothing runs
        assert {p["status"]["phase"] for p in pods} == {"Pending"}
        assert "node2" in kubectl("get", "nodes", "-o", "wide")
        # the installer's CoreDNS change (hosts without a nameserver): ConfigMap applied, then the restart
        from installer.render import coredns
        cm = tmp_path / "coredns.yaml"
        cm.write_text(coredns.configmap(coredns.corefile(coredns.MODE_NONE)))
        assert "configmap/coredns created" in kubectl("apply", "-f", str(cm))
        assert kubectl("-n", "kube-system", "rollout", "restart", "deployment", "coredns") == \
            "deployment.apps/coredns restarted\n"
        calls = [json.loads(ln) for ln in (n1 / "var/log/kubectl-double.log").read_text().splitlines()]
        applied_cm = [c for c in calls if c.get("event") == "applied-configmaps"][-1]
        assert applied_cm["source"] == str(cm) and "forward" not in applied_cm["documents"][0]
        assert "kubernetes cluster.local in-addr.arpa ip6.arpa" in applied_cm["documents"][0]
        assert calls[-1]["argv"][-5:] == ["kube-system", "rollout", "restart", "deployment", "coredns"]
        doctor_reads(kubectl)
        # day 2: a deleted join token is refused; etcd members by name; cordon, drain, delete node
        day2_doubles(installroot, tmp_path, port, ca_hash, kubectl, procs)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
    log = (n1 / "var/log/kubelet-double.log").read_text()
    assert "apiserver double serving" in log and "--node-ip=127.0.0.1" in log


def day2_doubles(installroot: Path, tmp_path: Path, port: int, ca_hash: str, kubectl, procs: list) -> None:  # noqa: ANN001
    n1 = tmp_path / "node1"
    token = _kubeadm(installroot, n1, "token", "create", "--ttl", "10m").stdout.strip().splitlines()[-1]
    assert "deleted" in _kubeadm(installroot, n1, "token", "delete", token.split(".")[0]).stdout
    again = _kubeadm(installroot, n1, "token", "delete", token.split(".")[0], check=False)
    assert again.returncode == 1 and "not found" in again.stderr
    late = tmp_path / "late.yaml"
    late.write_text(join_config("1.30.4", f"127.0.0.1:{port}", token, ca_hash, "node4", "127.0.0.4"))
    r = _kubeadm(installroot, tmp_path / "node4", "join", "--config", str(late), "--ignore-preflight-errors=all",
                 check=False)
    assert r.returncode == 1 and "refused the join" in r.stderr, r.stderr
    etcdctl = ("-n", "kube-system", "exec", "etcd-node1", "--", "etcdctl", "--endpoints=https://127.0.0.1:2379")
    members = json.loads(kubectl(*etcdctl, "member", "list", "-w", "json"))["members"]
    assert [m["name"] for m in members] == ["node1"]
    procs[1].terminate()  # node2's kubelet: stopped, as on a reset host (else it registers again)
    procs[1].wait(10)
    assert kubectl("cordon", "node2") == "node/node2 cordoned\n"
    node2 = json.loads(kubectl("get", "nodes", "node2", "-o", "json"))["items"][0]
    assert node2["spec"]["unschedulable"] is True
    assert kubectl("drain", "node2", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=60s") == \
        "node/node2 drained\n"
    assert kubectl("delete", "node", "node2") == 'node "node2" deleted\n'
    assert kubectl("delete", "node", "node2", "--ignore-not-found") == ""
    assert [n["metadata"]["name"] for n in json.loads(kubectl("get", "nodes", "-o", "json"))["items"]] == ["node1"]
    mid = "{:x}".format(members[0]["ID"])
    assert kubectl(*etcdctl, "member", "remove", mid) == f"Member {mid} removed from cluster\n"
    assert json.loads(kubectl(*etcdctl, "member", "list", "-w", "json"))["members"] == []


def doctor_reads(kubectl) -> None:  # noqa: ANN001
    """What ./install.py doctor asks the kubectl double: readyz, version, one pod, the kube-dns Service and its
    Endpoints (the CoreDNS pods, not ready here: nothing was pulled), events, etcd health and alarms."""
    assert kubectl("get", "--raw", "/readyz?verbose").endswith("readyz check passed\n")
    assert json.loads(kubectl("get", "--raw", "/version"))["gitVersion"] == "v1.30.4"
    pod = json.loads(kubectl("-n", "kube-system", "get", "pod", "coredns-0", "-o", "json"))
    assert pod["kind"] == "Pod" and pod["metadata"]["labels"] == {"k8s-app": "kube-dns"}
    svc = json.loads(kubectl("-n", "kube-system", "get", "service", "kube-dns", "-o", "json"))
    assert svc["spec"]["clusterIP"] == "10.96.0.10" and svc["spec"]["selector"] == {"k8s-app": "kube-dns"}
    ep = json.loads(kubectl("-n", "kube-system", "get", "endpoints", "kube-dns", "-o", "json"))
    assert [a["ip"] for a in ep["subsets"][0]["notReadyAddresses"]] == ["10.244.0.10", "10.244.0.11"]
    assert json.loads(kubectl("get", "events", "-A", "-o", "json"))["kind"] == "EventList"
    etcdctl = ("-n", "kube-system", "exec", "etcd-node1", "--", "etcdctl", "--endpoints=https://127.0.0.1:2379")
    assert json.loads(kubectl(*etcdctl, "endpoint", "health", "-w", "json"))[0]["health"] is True
    assert kubectl(*etcdctl, "alarm", "list") == ""


def kubectl_safe(bindir: Path, root: Path) -> str:
    r = subprocess.run([sys.executable, str(bindir / "kubectl"), "--kubeconfig", "/etc/kubernetes/admin.conf",
                        "get", "nodes"], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, KUBE_DOUBLE_ROOT=str(root)))
    return r.stdout


# --------------------------------------------------------------------------------------- site, images, plan
@pytest.fixture(scope="module")
def stack(served: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from tests.images.helpers import Proxy, Registry

    work = tmp_path_factory.mktemp("e2e-stack")
    site = build_e2e_site(work / "site")
    reg = Registry(work / "registry")
    proxy = Proxy(reg.host)
    try:
        with RepoHTTPServer(site.root) as server:
            site.server = server
            st = Stack(dict(served), reg, site, proxy=proxy)
            push_e2e_images(st)
            yield st
    finally:
        proxy.stop()
        reg.stop()


def test_site_carries_the_real_registry_and_the_helm_double(stack: Stack, tmp_path: Path) -> None:
    reg = next(p for p in stack.site.files if p.endswith("_linux_amd64.tar.gz"))
    with tarfile.open(stack.site.root / reg) as t:
        t.extractall(tmp_path, filter="data")
    out = subprocess.run([str(tmp_path / "registry"), "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "registry" in out.stdout.lower()
    helm = next(p for p in stack.site.files if "helm-v" in p)
    with tarfile.open(stack.site.root / helm) as t:
        t.extractall(tmp_path / "h", filter="data")
    out = subprocess.run([sys.executable, str(tmp_path / "h/linux-amd64/helm"), "version"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0 and "test-double" in out.stdout


@pytest.mark.skipif(not shutil.which("skopeo") or not shutil.which("umoci"), reason="apt-get install skopeo umoci")
def test_images_pull_and_unpack(stack: Stack, tmp_path: Path) -> None:
    for ref in ("registry.k8s.io/pause:3.9", "docker.io/calico/node:v3.28.1"):
        host, _, rest = ref.partition("/")
        name = f"{stack.registry.host}/{rest}"
        layout = tmp_path / rest.replace("/", "_").replace(":", "_")
        r = subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{name}", f"oci:{layout}:t"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        bundle = tmp_path / (layout.name + "-bundle")
        r = subprocess.run(["umoci", "unpack", "--image", f"{layout}:t", str(bundle)], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        assert ref in (bundle / "rootfs/etc/airgap-e2e-image").read_text()


def test_bundler_plan_resolves_the_content(stack: Stack, tmp_path: Path) -> None:
    manifest = tmp_path / "e2e.yaml"
    manifest.write_text(stack.manifest(name="e2e", packages=NODE_PACKAGES, media=MEDIA_REPOS, cni="calico"))
    r = subprocess.run([sys.executable, "-m", "bundler.cli", "plan", str(manifest), "--json", "--cache",
                        str(tmp_path / "cache")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    plan = json.loads(r.stdout)
    text = json.dumps(plan)
    for name in ("kubeadm-1.30.4", "containerd.io-1.6.20", "cri-tools-1.30.1", "kubernetes-cni-1.4.0"):
        assert name in text, name
    for ref in k8s_images("1.30.4", "calico"):
        assert ref in text, ref
