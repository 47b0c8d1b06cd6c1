"""HA upgrade on the rig (issue 14): ONE install of the 1.30.4 bundle with node1 + node2 control planes and node3
a worker, then `./install.py upgrade` to a 1.30.6 bundle built here:

  * a PodDisruptionBudget (selector app=web, no disruption allowed) over a Deployment's pods on node1 refuses
    the upgrade in the preflight, naming the budget, its selector and node1; nothing changed on any host;
  * `--ignore-pdb --max-unavailable 2` then goes through: `kubeadm upgrade apply` on node1 only, `kubeadm upgrade
    node` on node2 after node1 is uncordoned, never two control planes cordoned at once, the worker after every
    control plane, drains that delete instead of evict, every member's etcd health asked (--cluster).
The rig has three nodes, so --max-unavailable 2 has one worker to batch (batching itself: unit tests).
kubeadm/kubelet/kubectl/crictl are TEST DOUBLES (tests/e2e/content/doubles) that record every call.
"""

from __future__ import annotations

import json

import pytest
from rig import TIMER, LeakTrap

from tests.e2e import scenario
from tests.e2e.test_install import run
from tests.e2e.test_upgrade import _kubeadm, _kubectl_calls, _nodes, _now, _state, assert_upgraded, build_newer_bundles

KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf"


@pytest.fixture(scope="module")
def bundle_1306(upstream, tmp_path_factory):
    return build_newer_bundles(upstream, tmp_path_factory.mktemp("e2e-upgrade-ha"), ("1.30.6",))["1.30.6"]


def _window(calls: list, node: str) -> tuple[float, float]:
    """(first cordon, last uncordon) of `node` in the kubectl double's calls."""
    cordons = [t for t, a in calls if a[:1] == ["cordon"] and node in a]
    uncordons = [t for t, a in calls if a[:1] == ["uncordon"] and node in a]
    assert cordons and uncordons, (node, calls)
    return cordons[0], uncordons[-1]


def _workload(node1, image: str) -> None:  # noqa: ANN001
    node1.write_file("/root/web.yaml", (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: default\nspec:\n"
        "  replicas: 1\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n"
        f"        app: web\n    spec:\n      containers:\n      - name: web\n        image: {image}\n---\n"
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: web\n  namespace: default\nspec:\n"
        "  minAvailable: 1\n  selector:\n    matchLabels:\n      app: web\n"))
    node1.sh(f"{KUBECTL} apply -f /root/web.yaml && rm /root/web.yaml")


def test_ha_upgrade_order_and_pdb_refusal(rig, containerd_bundle, bundle_1306, upstream, clean_trap):
    tarball, _ = containerd_bundle
    node1, node2, node3 = rig.nodes.nodes
    with TIMER.stage("e2e upgrade HA: install node1 + node2 control planes, node3 worker (1.30.4)"):
        old_dir = rig.deliver_bundle(tarball)
        scenario.put_media(node1, upstream)
        node1.exec(["rm", "-f", f"{old_dir}/cluster.json"])
        first = run(node1, scenario.install_command(
            old_dir, ["--control-plane", f"{node1.ip},{node2.ip}", "--workers", node3.ip]))
    try:
        assert first.returncode == 0, first.stdout[-6000:]
        new_dir = rig.deliver_bundle(bundle_1306)
        pods = json.loads(node1.sh(f"{KUBECTL} get pods -A -o json"))["items"]
        image = next(c["image"] for p in pods if p["metadata"]["name"].startswith("kube-proxy")
                     for c in p["spec"]["containers"])
        _workload(node1, image)

        with TIMER.stage("e2e upgrade HA: a budget holding node1's drain refuses before any change"):
            sums = {n.name: _state(n) for n in rig.nodes}
            since = _now(node1)
            refused = run(node1, f"cd {new_dir} && ./install.py upgrade -y --max-unavailable 2")
            assert refused.returncode != 0, refused.stdout[-4000:]
            for want in ("PodDisruptionBudget default/web (selector app=web)", "covers default/web-0 on node node1",
                         "--ignore-pdb", "Nothing was changed"):
                assert want in refused.stdout, refused.stdout[-4000:]
            assert {n.name: _state(n) for n in rig.nodes} == sums
            assert {a[0] for _, a in _kubectl_calls(node1, since)} <= {"get", "-n"}, _kubectl_calls(node1, since)
            health = [a for _, a in _kubectl_calls(node1, since) if "endpoint" in a and "--cluster" in a]
            assert health, "the preflight asks every etcd member's health"

        with TIMER.stage("e2e upgrade HA: --ignore-pdb --max-unavailable 2, 1.30.4 -> 1.30.6"):
            since = _now(node1)
            up = run(node1, f"cd {new_dir} && ./install.py upgrade -y --ignore-pdb --max-unavailable 2")
            assert up.returncode == 0, up.stdout[-6000:]
            assert "--ignore-pdb: PodDisruptionBudget default/web" in up.stdout, up.stdout[-4000:]
            applies = [c for c in _kubeadm(node1, "upgrade apply", since) if c.get("result") == "ok"]
            assert [c["to"] for c in applies] == ["v1.30.6"], applies
            assert not _kubeadm(node2, "upgrade apply", since) and not _kubeadm(node3, "upgrade apply", since)
            assert not _kubeadm(node1, "upgrade node", since)
            calls = _kubectl_calls(node1, since)
            w1, w2, w3 = (_window(calls, n.name) for n in (node1, node2, node3))
            node2_up = [c for c in _kubeadm(node2, "upgrade node", since) if not c.get("fault")]
            assert node2_up and node2_up[-1]["clusterVersion"] == "v1.30.6", node2_up
            assert applies[0]["t0"] < w1[1] < node2_up[0]["t0"]  # node2's `upgrade node` after node1 is done
            assert w1[1] < w2[0], (w1, w2)  # never two control planes cordoned at once
            assert w2[1] < w3[0], (w2, w3)  # the worker after every control plane
            # and what every upgrade must show: cordon < drain < kubelet start < uncordon per node, annotations,
            # no kubelet ever newer than the API server (the kubelet double's checks), the record
            assert_upgraded(rig, since, "1.30.6")
            drains = [a for _, a in calls if a[:1] == ["drain"]]
            assert len(drains) == 3 and all("--disable-eviction" in a for a in drains), drains
            nodes = _nodes(node1)
            assert {k: v["status"]["nodeInfo"]["kubeletVersion"] for k, v in nodes.items()} == {
                n.name: "v1.30.6" for n in rig.nodes}
            assert not any(v["spec"].get("unschedulable") for v in nodes.values())
            record = json.loads(node1.read_file("/etc/airgap-bundler/cluster.json"))
            assert record["kubernetes"] == "1.30.6" and record["history"][-1]["result"] == "ok"
    finally:
        with TIMER.stage("e2e upgrade HA: reset"):
            reset = run(node1, f"cd {old_dir} && ./install.py reset -y")
    assert reset.returncode == 0, reset.stdout[-3000:]
    assert clean_trap.connections() == [], LeakTrap.describe(clean_trap.connections())
