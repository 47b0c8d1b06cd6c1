"""A multi-hop upgrade in one run, and an upgrade carried as a delta bundle, on the rig (issue 14). ONE install of
the 1.30.4 bundle (node1 control plane, node2 and node3 workers), then:

  1. `./install.py upgrade` from a 1.32.0 bundle built with `upgradeThrough: [1.31.1]` through the real builder
     path (pkgs.k8s.io-like repos, one per minor, both listed; the hop's RPMs solved and its images listed by the
     hop's own shipped kubeadm): `kubeadm upgrade apply` v1.31.1 then v1.32.0 exactly once each, every node
     through 1.31.1 before 1.32.0, the control plane before the workers at each step, no kubelet ever newer than
     the API server (the kubelet double checks at every start); the record at 1.32.0 with its history; `status`
     shows no pin drift (also run from the old bundle); versionlock entries (dnf's plugin put on the nodes: the
     node image has none) follow the versions, cri-tools too (the hop's kubeadm pulls a newer one along).
  2. `./install.py export-state` on that site, `bundler build --delta-from` it for a 1.32.1 bundle (same hop):
     only the delta is carried; `./install.py upgrade` completes it from the site before use, then upgrades
     1.32.0 -> 1.32.1 (a patch upgrade: the multi-hop path needs a 1.30 cluster, i.e. a second install).
  3. The same two-minor upgrade carried as a delta (second test, after a reset and a fresh 1.30.4 install):
     export-state at 1.30.4, a delta of the 1.32.0 bundle from it, `./install.py upgrade` from the delta alone.
  4. No connection leaves the rig.
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
from tests.e2e.test_delta import _bundler_build
from tests.e2e.test_install import run
from tests.e2e.test_upgrade import _kubeadm, _kubectl_calls, _log, _nodes, _now
from tests.upstream.http import RepoHTTPServer
from tests.upstream.yumrepos import build_rpms, createrepo

HOP, TARGET, PATCH = "1.31.1", "1.32.0", "1.32.1"


def _minor(v: str) -> str:
    return ".".join(v.split(".")[:2])


class HopBuilds:
    """Per-minor kube repos (served while the module runs) and manifests of bundles with upgradeThrough [HOP]."""

    def __init__(self, upstream, work: Path) -> None:  # noqa: ANN001
        self.upstream, self.work = upstream, work
        self.cache = work / "cache"  # one cache: the delta build downloads nothing the full one did
        repos = work / "repos"
        for v in (HOP, TARGET, PATCH):
            d = repos / f"v{_minor(v)}" / "x86_64"
            d.mkdir(parents=True, exist_ok=True)
            for rpm in build_rpms(kubernetes_packages(v), work / f"rpmbuild-{v}").values():
                (d / rpm.name).write_bytes(rpm.read_bytes())
            push_e2e_images(upstream.stack, version=v, cni="calico")
        for minor in {_minor(v) for v in (HOP, TARGET, PATCH)}:
            createrepo(repos / f"v{minor}")
        self.server = RepoHTTPServer(repos).start()

    def manifest(self, version: str, bundle_version: str) -> Path:
        """A manifest for `version` through HOP: the kubernetes repo of each minor listed, as docs/manifest.md says."""
        stack = self.upstream.stack
        packages = [f"kubeadm-{version}", f"kubelet-{version}", f"kubectl-{version}", "cri-tools", "kubernetes-cni",
                    *scenario.RUNTIME_PACKAGES["containerd"], *scenario.EXTRA_PACKAGES]
        text = stack.manifest(name="e2e", version=bundle_version, k8s=version, cni="calico", runtime="containerd",
                              packages=packages, media=MEDIA_REPOS)
        base = self.server.url.rstrip("/")
        old = f"{{name: kubernetes, baseurl: '{stack.repo_urls['kubernetes']}', onMedia: false}}"
        assert old in text, text
        text = text.replace(old, f"{{name: kubernetes, baseurl: '{base}/v{_minor(version)}/', onMedia: false}}\n"
                                 f"    - {{name: kubernetes-v{_minor(HOP)}, baseurl: '{base}/v{_minor(HOP)}/', "
                                 "onMedia: false}")
        line = f"  kubernetes: {{version: {version}}}"
        assert line in text, text
        text = text.replace(line, f"  kubernetes: {{version: {version}, upgradeThrough: [{HOP}]}}")
        path = self.work / f"e2e-{version}.yaml"
        path.write_text(text)
        return path

    def build(self, version: str, bundle_version: str, out: str, *extra: str) -> Path:
        """`bundler build` (once per output directory in this module)."""
        if (self.work / out).is_dir():
            return next((self.work / out).glob("*.tar.gz"))
        with TIMER.stage(f"e2e hops: bundler build {version} {' '.join(extra)}".rstrip()):
            return _bundler_build(self.manifest(version, bundle_version), self.work / out, self.cache, *extra)


@pytest.fixture(scope="module")
def hop_builds(upstream, tmp_path_factory):
    with TIMER.stage("e2e hops: kube RPMs and images of 1.31.1, 1.32.0, 1.32.1"):
        builds = HopBuilds(upstream, tmp_path_factory.mktemp("e2e-hops"))
    try:
        yield builds
    finally:
        builds.server.stop()


def _kubelet_versions(node, since: float) -> list[str]:  # noqa: ANN001
    """The kubelet versions the double started with since `since`, consecutive repeats folded."""
    out: list[str] = []
    for e in _log(node, "kubelet-double.log"):
        if e.get("event") == "version check" and e["t0"] >= since and (not out or out[-1] != e["kubelet"]):
            out.append(e["kubelet"])
    return out


def _kubelet_start(node, version: str, since: float) -> float:  # noqa: ANN001
    hits = [e["t0"] for e in _log(node, "kubelet-double.log")
            if e.get("event") == "version check" and e["t0"] >= since and e["kubelet"] == f"v{version}"]
    assert hits, (node.name, version)
    return hits[0]


def _times(calls: list, verb: str, node: str) -> list[float]:
    return [t for t, a in calls if a[:1] == [verb] and node in a]


def assert_upgraded_through(rig, since: float, versions: list[str]) -> None:  # noqa: ANN001
    """Order and skew of ONE upgrade run through `versions`, from the doubles' logs."""
    node1, node2, node3 = rig.nodes.nodes
    applies = [c for c in _kubeadm(node1, "upgrade apply", since) if c.get("result") == "ok"]
    assert [c["to"] for c in applies] == [f"v{v}" for v in versions], applies  # each exactly once, in order
    assert all("--ignore-preflight-errors" not in " ".join(c["argv"]) for c in _kubeadm(node1, "upgrade apply"))
    kubectl = _kubectl_calls(node1, since)
    for n in rig.nodes:
        assert _kubelet_versions(n, since) == [f"v{v}" for v in versions], (n.name, _kubelet_versions(n, since))
        skew = [e for e in _log(n, "kubelet-double.log") if e.get("event") in ("skew violation",)
                or (e.get("event") == "version check" and e.get("skew"))]
        assert not skew, (n.name, skew)  # never a kubelet newer than the API server
        # one cordon/drain/uncordon per step, in that order, annotated as ours
        cordons, drains, uncordons = (_times(kubectl, verb, n.name) for verb in ("cordon", "drain", "uncordon"))
        assert len(cordons) == len(drains) == len(uncordons) == len(versions), (n.name, kubectl)
        for c, d, u in zip(cordons, drains, uncordons):
            assert c < d < u, (n.name, c, d, u)
    for i, v in enumerate(versions):
        apply_t = applies[i]["t0"]
        cp_up = _kubelet_start(node1, v, since)
        for w in (node2, node3):
            ups = [c for c in _kubeadm(w, "upgrade node", since) if c.get("clusterVersion") == f"v{v}"]
            assert len(ups) == 1, (w.name, v, ups)
            # the control plane first: the API server and node1's kubelet at v before a worker moves to v
            assert apply_t < cp_up < _times(kubectl, "cordon", w.name)[i] < ups[0]["t0"], (w.name, v)
            assert _kubelet_start(w, v, since) > applies[i]["t0"]
            if i + 1 < len(versions):  # each node through v before the next step starts
                assert _kubelet_start(w, v, since) < applies[i + 1]["t0"], (w.name, v)
        # workers one at a time (--max-unavailable 1)
        assert _times(kubectl, "uncordon", node2.name)[i] < _times(kubectl, "cordon", node3.name)[i]
    nodes = _nodes(node1)
    assert {k: v["status"]["nodeInfo"]["kubeletVersion"] for k, v in nodes.items()} == {
        n.name: f"v{versions[-1]}" for n in rig.nodes}
    assert not any(v["spec"].get("unschedulable") for v in nodes.values())


def _add_versionlock_plugin(node) -> None:  # noqa: ANN001
    """dnf's versionlock plugin on a node, as an operator installs it (the node image has dnf without plugins): the
    files of Debian's dnf-plugins-core on this (Debian 12) machine, for the nodes' Debian 12 dnf."""
    site = "/usr/lib/python3/dist-packages"
    if not Path(f"{site}/dnf-plugins/versionlock.py").is_file() or not Path(f"{site}/dnfpluginscore").is_dir():
        pytest.fail("this machine has no dnf versionlock plugin to put on the nodes (apt-get install dnf-plugins-core)")
    node.sh(f"mkdir -p {site}/dnf-plugins /etc/dnf/plugins && rm -rf {site}/dnfpluginscore")
    node.copy_in(f"{site}/dnfpluginscore", f"{site}/dnfpluginscore")
    node.copy_in(f"{site}/dnf-plugins/versionlock.py", f"{site}/dnf-plugins/versionlock.py")
    node.write_file("/etc/dnf/plugins/versionlock.conf",
                    "[main]\nenabled = 1\nlocklist = /etc/dnf/plugins/versionlock.list\n")
    node.sh("touch /etc/dnf/plugins/versionlock.list")


def _versionlock(node) -> str | None:  # noqa: ANN001
    """`dnf versionlock list`, or None when the node has no versionlock plugin."""
    r = node.exec(["sh", "-c", "dnf -q versionlock list 2>&1"], check=False)
    return r.stdout if r.returncode == 0 else None


def test_two_minor_upgrade_in_one_run_then_a_delta_patch_upgrade(rig, containerd_bundle, hop_builds, upstream,
                                                                 clean_trap, tmp_path):
    tarball, _ = containerd_bundle
    node1, node2, node3 = rig.nodes.nodes
    for n in rig.nodes:
        _add_versionlock_plugin(n)
    old_dir, first = _install(rig, tarball, upstream)
    try:
        assert first.returncode == 0, first.stdout[-6000:]
        locks = {n.name: _versionlock(n) for n in rig.nodes}
        assert all(v and "kubeadm-0:1.30.4" in v for v in locks.values()), locks  # the install locked them
        print(f"\nversionlock plugin on the nodes: {({k: v is not None for k, v in locks.items()})}")
        full = hop_builds.build(TARGET, "2.0", "full-1.32.0")
        bom = json.loads(_bundle_json(full))
        hops = bom["kubernetes"]["hops"]
        assert [h["version"] for h in hops] == [HOP] and bom["kubernetes"]["upgradeFrom"] == "1.30", bom["kubernetes"]
        assert any(p.startswith(f"kubeadm-{HOP}-") for p in hops[0]["packages"]), hops
        assert f"registry.k8s.io/kube-apiserver:v{HOP}" in hops[0]["images"], hops
        assert "kubeadm" in (hops[0]["imagesFrom"] or ""), hops  # the hop's own shipped kubeadm was asked

        with TIMER.stage("e2e hops: upgrade 1.30.4 -> 1.31.1 -> 1.32.0 in one run"):
            full_dir = rig.deliver_bundle(full)
            since = _now(node1)
            up = run(node1, f"cd {full_dir} && ./install.py upgrade -y", timeout=1800)
        assert up.returncode == 0, _why(node1, up)
        assert f"upgrade path: 1.30.4 -> {HOP} -> {TARGET}" in up.stdout, up.stdout[-4000:]
        assert_upgraded_through(rig, since, [HOP, TARGET])
        record = json.loads(node1.read_file("/etc/airgap-bundler/cluster.json"))
        assert record["kubernetes"] == TARGET and "upgrading" not in record, record
        last = record["history"][-1]
        assert last["operation"] == f"upgrade 1.30.4 -> {TARGET}" and last["result"] == "ok", record["history"]
        assert record["history"][0]["operation"].startswith("install"), record["history"]
        status = run(node1, f"cd {full_dir} && ./install.py status")
        assert status.returncode == 0, status.stdout[-4000:]
        assert status.stdout.count("version pins: all ok") == 3 and "DRIFT" not in status.stdout, status.stdout[-4000:]
        # from the old bundle too: the pins are judged by the recorded (new) bundle, whose cri-tools the hop's
        # kubeadm pulled in (kubeadm 1.31 requires cri-tools >= 1.31)
        status_old = run(node1, f"cd {old_dir} && ./install.py status")
        assert status_old.returncode == 0, status_old.stdout[-4000:]
        assert "DRIFT" not in status_old.stdout, status_old.stdout[-4000:]
        for n in rig.nodes:
            after = _versionlock(n)
            assert (after is None) == (locks[n.name] is None), (n.name, after)
            if after is not None:  # the entries follow the versions, also of what the hop's kubeadm pulled along
                for name in ("kubeadm", "kubelet", "kubectl"):
                    assert f"{name}-{TARGET}" in after or f"{name}-0:{TARGET}" in after, (n.name, after)
                assert "1.30.4" not in after and HOP not in after, (n.name, after)
                entries = re.findall(r"(?m)^(\S+?)-(?:\d+:)?(\d[^-]*)-\S+$", after)
                installed = dict(line.split() for line in n.sh(
                    "rpm -q --qf '%{NAME} %{VERSION}\\n' " + " ".join(e[0] for e in entries)).splitlines())
                assert entries and all(installed[name] == v for name, v in entries), (n.name, after, installed)

        with TIMER.stage("e2e hops: export-state, build the 1.32.1 bundle and its delta"):
            exported = run(node1, f"cd {full_dir} && ./install.py export-state -o /root/site-state.json")
            assert exported.returncode == 0, exported.stdout[-3000:]
            state = tmp_path / "site-state.json"
            node1.copy_out("/root/site-state.json", str(state))
            patch_full = hop_builds.build(PATCH, "2.1", "full-1.32.1")
            delta = hop_builds.build(PATCH, "2.1", "delta-1.32.1", "--delta-from", str(state))
        assert delta.name.endswith("-delta.tar.gz"), delta
        sizes = (patch_full.stat().st_size, delta.stat().st_size)
        print(f"\n1.32.0 bundle (with hop) {full.stat().st_size} bytes; 1.32.1 full {sizes[0]} bytes, delta "
              f"{sizes[1]} bytes ({100 * sizes[1] / sizes[0]:.1f} %)")
        assert sizes[1] < sizes[0] / 2, sizes

        with TIMER.stage("e2e hops: upgrade 1.32.0 -> 1.32.1 from the delta alone"):
            delta_dir = rig.deliver_bundle(delta)
            omitted = json.loads(node1.read_file(f"{delta_dir}/bundle.json"))["delta"]["omitted"]
            assert omitted["packages"] and omitted["blobs"], omitted
            # the hop's RPMs are on the site (the 1.32.0 bundle's repo, staged beside the first): left out
            assert any(f"/kubeadm-{HOP}-" in e["path"] for e in omitted["packages"]), omitted["packages"]
            since = _now(node1)
            up2 = run(node1, f"cd {delta_dir} && ./install.py upgrade -y", timeout=1800)
        assert up2.returncode == 0, _why(node1, up2)
        assert "delta bundle: completed" in up2.stdout, up2.stdout[-4000:]
        assert f"upgrade path: {TARGET} -> {PATCH}" in up2.stdout, up2.stdout[-4000:]
        assert_upgraded_through(rig, since, [PATCH])
        record = json.loads(node1.read_file("/etc/airgap-bundler/cluster.json"))
        assert record["kubernetes"] == PATCH and record["history"][-1]["result"] == "ok", record["history"][-1]
        status = run(node1, f"cd {delta_dir} && ./install.py status")
        assert status.returncode == 0 and "DRIFT" not in status.stdout, status.stdout[-4000:]
    finally:
        with TIMER.stage("e2e hops: reset"):
            reset = run(node1, f"cd {old_dir} && ./install.py reset -y")
    assert reset.returncode == 0, reset.stdout[-3000:]
    assert clean_trap.connections() == [], LeakTrap.describe(clean_trap.connections())


def test_the_two_minor_upgrade_carried_as_a_delta(rig, containerd_bundle, hop_builds, upstream, clean_trap,
                                                  tmp_path):
    """Item 2 as the brief puts it: a fresh 1.30.4 install (after the first test's reset), its export-state, a delta
    of the same 1.32.0 bundle with the 1.31.1 hop built from it; only the delta carried; one upgrade through both
    minors from it."""
    tarball, _ = containerd_bundle
    node1 = rig.node1
    left = node1.sh("ls -d /opt/airgap/repo-* /etc/yum.repos.d/airgap-upgrade.repo 2>/dev/null; true").split()
    print(f"\nleft on node1 by the first test's reset (staged upgrade repos): {left or 'nothing'}")
    old_dir, first = _install(rig, tarball, upstream)
    try:
        assert first.returncode == 0, first.stdout[-6000:]
        with TIMER.stage("e2e hops: export-state at 1.30.4, build the 1.32.0 delta"):
            exported = run(node1, f"cd {old_dir} && ./install.py export-state -o /root/site-state.json")
            assert exported.returncode == 0, exported.stdout[-3000:]
            state = tmp_path / "site-state.json"
            node1.copy_out("/root/site-state.json", str(state))
            full = hop_builds.build(TARGET, "2.0", "full-1.32.0")
            delta = hop_builds.build(TARGET, "2.0", "delta-1.32.0", "--delta-from", str(state))
        sizes = (full.stat().st_size, delta.stat().st_size)
        print(f"\n1.32.0 bundle with the 1.31.1 hop: full {sizes[0]} bytes, delta from the 1.30.4 site {sizes[1]} "
              f"bytes ({100 * sizes[1] / sizes[0]:.1f} %)")
        assert sizes[1] < sizes[0], sizes

        with TIMER.stage("e2e hops: upgrade 1.30.4 -> 1.31.1 -> 1.32.0 from the delta alone"):
            delta_dir = rig.deliver_bundle(delta)
            omitted = json.loads(node1.read_file(f"{delta_dir}/bundle.json"))["delta"]["omitted"]
            assert omitted["packages"] and omitted["blobs"], omitted
            # the hop's and the target's kube RPMs are new to the site: carried, not omitted
            assert not [e for e in omitted["packages"] if f"-{HOP}-" in e["path"] or f"-{TARGET}-" in e["path"]]
            since = _now(node1)
            up = run(node1, f"cd {delta_dir} && ./install.py upgrade -y", timeout=1800)
        assert up.returncode == 0, _why(node1, up)
        assert "delta bundle: completed" in up.stdout, up.stdout[-4000:]
        assert f"upgrade path: 1.30.4 -> {HOP} -> {TARGET}" in up.stdout, up.stdout[-4000:]
        assert_upgraded_through(rig, since, [HOP, TARGET])
        record = json.loads(node1.read_file("/etc/airgap-bundler/cluster.json"))
        assert record["kubernetes"] == TARGET and record["history"][-1]["result"] == "ok", record["history"][-1]
    finally:
        with TIMER.stage("e2e hops: reset"):
            reset = run(node1, f"cd {old_dir} && ./install.py reset -y")
    assert reset.returncode == 0, reset.stdout[-3000:]
    assert clean_trap.connections() == [], LeakTrap.describe(clean_trap.connections())


def _install(rig, tarball: Path, upstream):  # noqa: ANN001, ANN202
    """The 1.30.4 bundle delivered and installed: node1 control plane, node2 and node3 workers."""
    node1, node2, node3 = rig.nodes.nodes
    with TIMER.stage("e2e hops: deliver 1.30.4, install node1 + node2, node3"):
        old_dir = rig.deliver_bundle(tarball)
        scenario.put_media(node1, upstream)
        node1.exec(["rm", "-f", f"{old_dir}/cluster.json"])
        return old_dir, run(node1, scenario.install_command(
            old_dir, ["--control-plane", node1.ip, "--workers", f"{node2.ip},{node3.ip}"]))


def _why(node1, result) -> str:  # noqa: ANN001
    """A failed run's output with the tail of node1's installer log and of the doubles' logs (the rig is gone
    by the time anyone reads the failure)."""
    logs = node1.sh("d=$(ls -td /var/log/airgap-installer/*/ | head -1); tail -n 60 $d/*11.log; "
                    "cd /var/log && tail -n 8 kubectl-double.log kubeadm-double.log kubelet-double.log; true")
    return result.stdout[-5000:] + "\n---- node1 logs ----\n" + logs[-8000:]


def _bundle_json(tarball: Path) -> str:
    import tarfile

    with tarfile.open(tarball) as t:
        member = next(m for m in t.getmembers() if m.name.endswith("/bundle.json") and m.name.count("/") == 1)
        return t.extractfile(member).read().decode()
