"""Upgrade on the rig (issue 14): ONE install of the 1.30.4 bundle (node1 control plane, node2 and node3
workers), then `./install.py upgrade` from newer bundles built here through the test upstreams:

  * plan upgrade to 1.30.6 lists the steps and changes nothing; upgrade 1.30.4 -> 1.30.6: one `kubeadm upgrade
    apply` (never --ignore-preflight-errors), control plane before the workers, every node cordoned (annotated),
    drained before its kubelet restarts and uncordoned, workers one at a time, and no kubelet ever newer than the
    API server (the kubelet double records its version against the API server's at every start);
  * a 1.32.0 bundle (no 1.31 hop) on the 1.30.6 cluster: refused naming the missing minor, nothing changed;
  * 1.30.6 -> 1.31.1 with a fault injected in node3's `kubeadm upgrade node` (a marker file the double honours):
    stops naming node3, left cordoned and annotated; the re-run completes without a second `apply`.
kubeadm/kubelet/kubectl/crictl are TEST DOUBLES (tests/e2e/content/doubles) that record every call.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from rig import TIMER, LeakTrap

from tests.e2e import scenario
from tests.e2e.content.images import push_e2e_images
from tests.e2e.content.repos import MEDIA_REPOS, kubernetes_packages
from tests.e2e.test_day2 import checksums, in_cluster_record
from tests.e2e.test_install import run
from tests.upstream.http import RepoHTTPServer
from tests.upstream.yumrepos import build_rpms, createrepo

VERSIONS = ("1.30.6", "1.31.1", "1.32.0")
FAULT = "/etc/airgap-e2e/fail-upgrade-node"


@pytest.fixture(scope="module")
def newer_bundles(upstream, tmp_path_factory):
    """{version: tarball} of bundles like the session's 1.30.4 one, for each of VERSIONS: kube RPMs of that
    version in a pkgs.k8s.io-like repo of its minor (served here), kubeadm's images of it in the registry."""
    return build_newer_bundles(upstream, tmp_path_factory.mktemp("e2e-upgrade"), VERSIONS)


def build_newer_bundles(upstream, work: Path, versions: tuple) -> dict:  # noqa: ANN001
    repos = work / "repos"
    with TIMER.stage("e2e upgrade: kube RPMs and images of the newer versions"):
        for v in versions:
            minor = ".".join(v.split(".")[:2])
            d = repos / f"v{minor}"
            built = build_rpms(kubernetes_packages(v), work / f"rpmbuild-{v}")
            (d / "x86_64").mkdir(parents=True)
            for rpm in built.values():
                (d / "x86_64" / rpm.name).write_bytes(rpm.read_bytes())
            createrepo(d)
            push_e2e_images(upstream.stack, version=v, cni="calico")
    server = RepoHTTPServer(repos).start()
    out = {}
    try:
        cache = work / "cache"
        for i, v in enumerate(versions):
            minor = ".".join(v.split(".")[:2])
            packages = [f"kubeadm-{v}", f"kubelet-{v}", f"kubectl-{v}", "cri-tools", "kubernetes-cni",
                        *scenario.RUNTIME_PACKAGES["containerd"], *scenario.EXTRA_PACKAGES]
            text = upstream.stack.manifest(name="e2e", version=f"1.{i + 1}", k8s=v, cni="calico",
                                           runtime="containerd", packages=packages, media=MEDIA_REPOS)
            text = text.replace(upstream.stack.repo_urls["kubernetes"], f"{server.url.rstrip('/')}/v{minor}/")
            manifest = work / f"e2e-{v}.yaml"
            manifest.write_text(text)
            with TIMER.stage(f"e2e upgrade: bundler build {v}"):
                out[v] = scenario.bundler_build(manifest, work / f"out-{v}", cache)[0]
    finally:
        server.stop()
    return out


def _log(node, name: str) -> list[dict]:  # noqa: ANN001
    text = node.exec(["sh", "-c", f"cat /var/log/{name} 2>/dev/null"], check=False).stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _kubeadm(node, command: str, since: float = 0) -> list[dict]:  # noqa: ANN001
    return [c for c in _log(node, "kubeadm-double.log") if c.get("command") == command and c["t0"] >= since]


def _kubectl_calls(node, since: float) -> list[tuple[float, list[str]]]:  # noqa: ANN001
    """(time, words after --kubeconfig FILE) of the kubectl double's calls since `since`."""
    out = []
    for c in _log(node, "kubectl-double.log"):
        argv = c.get("argv") or []
        if c["t0"] >= since and argv:
            out.append((c["t0"], argv[2:] if argv[0] == "--kubeconfig" else argv))
    return out


def _first(calls: list, verb: str, node: str) -> float:
    hits = [t for t, a in calls if a[:1] == [verb] and node in a]
    assert hits, (verb, node, calls)
    return hits[0]


def _nodes(node1) -> dict:  # noqa: ANN001
    items = json.loads(node1.sh("kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o json"))["items"]
    return {i["metadata"]["name"]: i for i in items}


def _state(node) -> str:  # noqa: ANN001
    """checksums() without the installer's log directory listing (a refused run leaves its log, nothing else)."""
    return checksums(node, kubectl_log=False).split("/var/log/airgap-installer:")[0]


def _now(node) -> float:  # noqa: ANN001
    return float(node.sh("date +%s.%N"))


def assert_upgraded(rig, since: float, version: str) -> None:  # noqa: ANN001
    """Order and skew from the doubles' logs for one upgrade run that went through (started at `since`)."""
    node1, node2, node3 = rig.nodes.nodes
    applies = [c for c in _kubeadm(node1, "upgrade apply", since) if c.get("result") == "ok"]
    assert [c["to"] for c in applies] == [f"v{version}"], applies
    assert all("--ignore-preflight-errors" not in " ".join(c["argv"]) for c in _kubeadm(node1, "upgrade apply"))
    kubectl = _kubectl_calls(node1, since)
    for n in (node2, node3):
        ups = [c for c in _kubeadm(n, "upgrade node", since) if not c.get("fault")]
        assert ups and ups[-1]["clusterVersion"] == f"v{version}", ups
        assert applies[0]["t0"] < ups[-1]["t0"]  # the control plane first
    for n in (node1, node2, node3):
        cordon, drain = _first(kubectl, "cordon", n.name), _first(kubectl, "drain", n.name)
        uncordon = _first(kubectl, "uncordon", n.name)
        starts = [e["t0"] for e in _log(n, "kubelet-double.log") if e.get("event") == "start" and e["t0"] > since]
        assert starts and cordon < drain < starts[-1] < uncordon, (n.name, cordon, drain, starts, uncordon)
        checks = [e for e in _log(n, "kubelet-double.log") if e.get("event") == "version check" and e["t0"] > since]
        assert checks and checks[-1]["kubelet"] == f"v{version}" and checks[-1]["apiserver"] == f"v{version}"
        assert not [e for e in _log(n, "kubelet-double.log") if e.get("event") == "skew violation"], n.name
        ann = [a for t, a in kubectl if a[:1] == ["annotate"] and n.name in a]
        assert any("airgap-bundler/cordoned-by=" in " ".join(a) for a in ann), ann
    # workers one at a time (--max-unavailable 1): node2 back before node3 is cordoned
    assert _first(kubectl, "uncordon", node2.name) < _first(kubectl, "cordon", node3.name)
    nodes = _nodes(node1)
    assert {k: v["status"]["nodeInfo"]["kubeletVersion"] for k, v in nodes.items()} == {
        n.name: f"v{version}" for n in rig.nodes}
    assert not any(v["spec"].get("unschedulable") for v in nodes.values())
    record = json.loads(node1.read_file("/etc/airgap-bundler/cluster.json"))
    assert record["kubernetes"] == version and record["history"][-1]["result"] == "ok", record["history"][-1]
    assert record["history"][-1]["operation"].startswith("upgrade ") and "upgrading" not in record
    assert in_cluster_record(node1) == record


def test_upgrade_patch_then_minor_refusal_fault_and_resume(rig, containerd_bundle, newer_bundles, upstream,
                                                           clean_trap):
    tarball, _ = containerd_bundle
    node1, node2, node3 = rig.nodes.nodes
    with TIMER.stage("e2e upgrade: deliver 1.30.4, install node1 + node2, node3"):
        old_dir = rig.deliver_bundle(tarball)
        scenario.put_media(node1, upstream)
        node1.exec(["rm", "-f", f"{old_dir}/cluster.json"])
        first = run(node1, scenario.install_command(
            old_dir, ["--control-plane", node1.ip, "--workers", f"{node2.ip},{node3.ip}"]))
    try:
        assert first.returncode == 0, first.stdout[-6000:]
        dirs = {v: rig.deliver_bundle(Path(t)) for v, t in newer_bundles.items()}

        with TIMER.stage("e2e upgrade: plan upgrade 1.30.6 changes nothing"):
            sums = {n.name: checksums(n, kubectl_log=False) for n in rig.nodes}
            before = _now(node1)
            plan = run(node1, f"cd {dirs['1.30.6']} && ./install.py plan upgrade")
            assert plan.returncode == 0, plan.stdout[-4000:]
            assert {n.name: checksums(n, kubectl_log=False) for n in rig.nodes} == sums
            assert {a[0] for _, a in _kubectl_calls(node1, before)} <= {"get", "-n"}, _kubectl_calls(node1, before)
            for want in ("upgrade path: 1.30.4 -> 1.30.6", "kubeadm upgrade apply v1.30.6", "drain node2",
                         "kubeadm upgrade node (1.30.6)", "install kubelet and kubectl 1.30.6"):
                assert want in plan.stdout, plan.stdout[-4000:]
            per_host = {n.name: [ln for ln in plan.stdout.splitlines() if ln.startswith(f"[{n.ip}]")]
                        for n in rig.nodes}  # per host, what would change
            assert any("upgrade_apply: kubeadm upgrade apply" in ln for ln in per_host["node1"]), per_host
            assert all(any("restart kubelet 1.30.6" in ln for ln in lines) for lines in per_host.values()), per_host

        with TIMER.stage("e2e upgrade: 1.30.4 -> 1.30.6"):
            since = _now(node1)
            up = run(node1, f"cd {dirs['1.30.6']} && ./install.py upgrade -y")
            assert up.returncode == 0, up.stdout[-6000:]
            assert_upgraded(rig, since, "1.30.6")

        with TIMER.stage("e2e upgrade: a 1.32.0 bundle without a 1.31 hop is refused"):
            sums = {n.name: _state(n) for n in rig.nodes}
            refused = run(node1, f"cd {dirs['1.32.0']} && ./install.py upgrade -y")
            assert refused.returncode != 0, refused.stdout[-3000:]
            assert "this bundle has no 1.31 hop" in refused.stdout and "Nothing was changed" in refused.stdout
            assert {n.name: _state(n) for n in rig.nodes} == sums

        with TIMER.stage("e2e upgrade: 1.30.6 -> 1.31.1, node3's upgrade fails, then the re-run"):
            node3.sh(f"mkdir -p {Path(FAULT).parent} && touch {FAULT}")
            since = _now(node1)
            try:
                failed = run(node1, f"cd {dirs['1.31.1']} && ./install.py upgrade -y")
            finally:
                node3.sh(f"rm -f {FAULT}")
            assert failed.returncode != 0, failed.stdout[-4000:]
            assert "injected upgrade failure" in failed.stdout
            assert re.search(rf"host ({re.escape(node3.ip)}|node3)", failed.stdout), failed.stdout[-3000:]
            n3 = _nodes(node1)["node3"]
            assert n3["spec"]["unschedulable"] and "airgap-bundler/cordoned-by" in n3["metadata"]["annotations"]
            assert _nodes(node1)["node2"]["status"]["nodeInfo"]["kubeletVersion"] == "v1.31.1"
            record = json.loads(node1.read_file("/etc/airgap-bundler/cluster.json"))
            assert record["history"][-1]["result"].startswith("failed") and record["kubernetes"] == "1.30.6"
            assert node1.exec(["test", "-e", "/etc/airgap-bundler/lock"], check=False).returncode != 0
            node2_upgrades = len(_kubeadm(node2, "upgrade node", since))
            again = run(node1, f"cd {dirs['1.31.1']} && ./install.py upgrade -y")
            assert again.returncode == 0, again.stdout[-6000:]
            assert "resuming" in again.stdout
            assert_upgraded(rig, since, "1.31.1")  # one apply over both runs
            assert len(_kubeadm(node2, "upgrade node", since)) == node2_upgrades  # node2 not redone
            assert "airgap-bundler/cordoned-by" not in _nodes(node1)["node3"]["metadata"]["annotations"]

        with TIMER.stage("e2e upgrade: at the target, nothing to do"):
            since = _now(node1)
            done = run(node1, f"cd {dirs['1.31.1']} && ./install.py upgrade -y")
            assert done.returncode == 0 and "nothing to upgrade" in done.stdout, done.stdout[-3000:]
            assert not [c for n in rig.nodes for c in _log(n, "kubeadm-double.log") if c["t0"] >= since
                        and c.get("command", "").startswith("upgrade")]
            assert {a[0] for _, a in _kubectl_calls(node1, since)} <= {"get", "-n", "apply"}  # apply: the record
    finally:
        with TIMER.stage("e2e upgrade: reset"):
            reset = run(node1, f"cd {old_dir} && ./install.py reset -y")
    assert reset.returncode == 0, reset.stdout[-3000:]
    assert clean_trap.connections() == [], LeakTrap.describe(clean_trap.connections())
