"""Operator mistakes on the rig: each gets one clear paragraph, and no host is changed.

Unreachable host, wrong SSH key, inventory typo, a bundle for el7 on these el9 hosts, a tampered bundle,
missing media: install.py must stop before its first change, say what is wrong and how to fix it.
"""

from __future__ import annotations

import pytest
from rig import TIMER

from tests.e2e import scenario

STATE = "/var/lib/airgap-installer"


@pytest.fixture(scope="module")
def delivered(rig, containerd_bundle, upstream):
    tarball, _ = containerd_bundle
    bundle_dir = rig.deliver_bundle(tarball)
    scenario.put_media(rig.node1, upstream)
    return bundle_dir


@pytest.fixture(scope="module")
def el7_bundle_dir(rig, upstream, tmp_path_factory):
    """A bundle built for el7 (images and files only: quick), to meet these Rocky 9 hosts."""
    work = tmp_path_factory.mktemp("e2e-el7")
    with TIMER.stage("e2e: bundler build (el7, for the mismatch test)"):
        manifest = work / "el7.yaml"
        manifest.write_text(upstream.stack.manifest(name="el7", os_="el7", packages=[]))
        tarball, _ = scenario.bundler_build(manifest, work / "out", work / "cache")
    return rig.deliver_bundle(tarball)


def attempt(rig, cmd: str):
    before = {n.name: scenario.snapshot(n) for n in rig.nodes}
    res = rig.node1.exec(["sh", "-c", cmd + " 2>&1"], check=False, timeout=300)
    out = res.stdout
    assert res.returncode != 0, out
    assert "Traceback" not in out, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out  # one paragraph
    for node in rig.nodes:
        assert scenario.snapshot(node) == before[node.name], node.name
        assert node.exec(["test", "-e", STATE], check=False).returncode != 0, f"{node.name} has installer state"
    return errors[0]


def test_unreachable_host(rig, delivered):
    args = ["--control-plane", "192.168.251.11", "--workers", "192.168.251.12,192.168.251.19"]
    err = attempt(rig, scenario.install_command(delivered, args))
    assert "192.168.251.19" in err and "nothing was changed" in err.lower()


def test_wrong_ssh_key(rig, delivered):
    rig.node1.sh("rm -f /root/wrong_key* && ssh-keygen -q -t ed25519 -N '' -f /root/wrong_key")
    err = attempt(rig, scenario.install_command(delivered, rig.install_args() + ["--ssh-key", "/root/wrong_key"]))
    assert "192.168.251.12" in err or "192.168.251.13" in err
    assert "key" in err.lower()


def test_inventory_typo(rig, delivered):
    rig.node1.write_file("/root/inventory.ini", "[control_plane]\n192.168.251.11\n\n[workrs]\n192.168.251.12\n")
    cmd = f"cd {delivered} && ./install.py -i /root/inventory.ini --media /mnt/media --pod-subnet 10.244.0.0/16"
    err = attempt(rig, cmd)
    assert "inventory.ini" in err and "workrs" in err and "workers" in err


def test_el7_bundle_on_el9_hosts(rig, el7_bundle_dir):
    err = attempt(rig, scenario.install_command(el7_bundle_dir, rig.install_args()))
    assert "el7" in err and ("el9" in err or "9.4" in err)


def test_tampered_bundle(rig, delivered):
    target = f"{delivered}/installer/phases/host_prep.py"
    rig.node1.sh(f"cp {target} /root/host_prep.orig && echo '# tampered' >> {target}")
    try:
        err = attempt(rig, scenario.install_command(delivered, rig.install_args()))
        assert "installer/phases/host_prep.py" in err
    finally:
        rig.node1.sh(f"cp /root/host_prep.orig {target}")


def test_missing_media(rig, delivered):
    cmd = scenario.install_command(delivered, rig.install_args()).replace("--media /mnt/media", "--media /mnt/none")
    err = attempt(rig, cmd)
    assert "/mnt/none" in err
