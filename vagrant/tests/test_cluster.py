"""A real cluster installed from the bundle on air-gapped VMs (run by `make vagrant-test`)."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest

KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf"
TEST_NS = "airgap-vagrant-test"


def kubectl_json(cp1: Any, args: str) -> dict[str, Any]:
    return json.loads(cp1.check_output(f"{KUBECTL} {args} -o json"))


def wait_for(what: str, probe: Any, timeout: float = 300, interval: float = 5) -> None:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 1):
        if probe():
            return
        if time.monotonic() > deadline:
            break
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def test_no_default_route(hosts: dict[str, Any]) -> None:
    for name, h in hosts.items():
        assert h.check_output("ip route show default; ip -6 route show default").strip() == "", name


def test_nodes_ready(cp1: Any) -> None:
    def ready() -> bool:
        nodes = kubectl_json(cp1, "get nodes")["items"]
        states = [c["status"] for n in nodes for c in n["status"]["conditions"] if c["type"] == "Ready"]
        return len(nodes) == 3 and states == ["True"] * 3

    wait_for("3 nodes Ready", ready)
    names = sorted(n["metadata"]["name"] for n in kubectl_json(cp1, "get nodes")["items"])
    assert names == ["cp1", "w1", "w2"]


def test_system_pods_running(cp1: Any) -> None:
    def running() -> bool:
        pods = kubectl_json(cp1, "get pods -A")["items"]
        system = [p for p in pods if p["metadata"]["namespace"] in ("kube-system", "calico-system", "kube-flannel",
                                                                      "tigera-operator")]
        return bool(system) and all(p["status"].get("phase") in ("Running", "Succeeded") for p in system)

    wait_for("system pods Running", running, timeout=600)


def _local_image(cp1: Any) -> str:
    """An image the bundle carries (its pause image), pulled by its original name: the container
    runtime's mirror config must send it to the local registry, there is no other way out."""
    stem = os.environ.get("AIRGAP_BUNDLE_STEM", "")
    bom = json.loads(cp1.check_output(f"cat /root/{stem}/bundle.json"))
    refs = [i["ref"] for i in bom["images"]]
    pause = [r for r in refs if "/pause:" in r]
    return (pause or refs)[0]


def test_deployment_from_local_registry(cp1: Any) -> None:
    image = _local_image(cp1)
    manifest = f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: airgap-probe, namespace: {TEST_NS}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: airgap-probe}}}}
  template:
    metadata: {{labels: {{app: airgap-probe}}}}
    spec:
      containers:
      - {{name: probe, image: "{image}", imagePullPolicy: Always}}
"""
    cp1.check_output(f"{KUBECTL} create namespace {TEST_NS} --dry-run=client -o yaml | {KUBECTL} apply -f -")
    cp1.run(f"cat > /root/airgap-probe.yaml <<'EOF'\n{manifest}EOF")
    cp1.check_output(f"{KUBECTL} apply -f /root/airgap-probe.yaml")
    try:
        def running() -> bool:
            pods = kubectl_json(cp1, f"-n {TEST_NS} get pods -l app=airgap-probe")["items"]
            return len(pods) == 2 and all(p["status"].get("phase") == "Running" for p in pods)

        wait_for(f"2 pods of {image} Running", running)
    finally:
        cp1.run(f"{KUBECTL} delete namespace {TEST_NS} --wait=false")


def test_containerd_and_kubelet_running(hosts: dict[str, Any]) -> None:
    for name, h in hosts.items():
        assert h.service("kubelet").is_running, name
        assert h.service("containerd").is_running or h.service("docker").is_running, name
