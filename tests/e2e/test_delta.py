"""Delta bundles on the rig (issue 14): install the base bundle on node1, `./install.py export-state` there,
`bundler build --delta-from` that state for a newer bundle (version 1.1, one more image), carry only the delta.

With one base blob moved out of node1's registry storage, complete-delta exits 2 naming it and changes nothing
(the delta directory and the registry storage are as they were); with the blob back, it completes the bundle
from the site (every omitted RPM, blob and file checked by digest), the whole bundle verifies, and
`./install.py plan` from it (hosts from the cluster record) runs and changes nothing. No connection leaves the
rig. kubeadm/kubelet/kubectl are TEST DOUBLES (tests/e2e/content/doubles).
"""

from __future__ import annotations

import json
import shlex

from rig import TIMER, LeakTrap

from tests.e2e import scenario
from tests.e2e.content.images import e2e_image_layers
from tests.e2e.test_install import run

NEW_IMAGE = "docker.io/library/delta-e2e:1"  # what the newer bundle adds
BLOBS = "/var/lib/airgap-registry/docker/registry/v2/blobs/sha256"


def tree(node, path: str) -> str:  # noqa: ANN001
    """Every file under path with its sha256 (what 'changes nothing' is checked against)."""
    return node.sh(f"cd {shlex.quote(path)} && find . -type f -print0 | sort -z | xargs -0 sha256sum; true",
                   timeout=300)


def test_delta_from_the_site_state_completes_on_site_and_refuses_a_missing_blob(rig, containerd_bundle, upstream,
                                                                                 clean_trap, tmp_path):
    tarball, _ = containerd_bundle
    node1 = rig.node1
    with TIMER.stage("e2e delta: install the base bundle on node1"):
        base_dir = rig.deliver_bundle(tarball)
        scenario.put_media(node1, upstream)
        node1.exec(["rm", "-f", f"{base_dir}/cluster.json"])
        first = run(node1, scenario.install_command(base_dir, ["--control-plane", node1.ip]))
    assert first.returncode == 0, first.stdout[-6000:]
    try:
        with TIMER.stage("e2e delta: export-state, build full and delta bundles"):
            exported = run(node1, f"cd {base_dir} && ./install.py export-state -o /root/site-state.json")
            assert exported.returncode == 0 and "wrote /root/site-state.json" in exported.stdout, exported.stdout
            state = tmp_path / "site-state.json"
            node1.copy_out("/root/site-state.json", str(state))
            doc = json.loads(state.read_text())
            assert doc["rpms"] and doc["blobs"] and doc["files"] and not doc["problems"], doc["problems"]
            assert doc["bundles"][0]["name"] == "e2e" and doc["bundles"][0]["version"] == "1.0"

            upstream.stack.push(NEW_IMAGE, layers=e2e_image_layers(NEW_IMAGE))
            manifest = tmp_path / "e2e-1.1.yaml"
            manifest.write_text(upstream.stack.manifest(
                name="e2e", version="1.1", k8s="1.30.4", cni="calico", runtime="containerd",
                packages=scenario.K8S_PACKAGES + scenario.RUNTIME_PACKAGES["containerd"] + scenario.EXTRA_PACKAGES,
                media=scenario.MEDIA_REPOS, extra_images=[NEW_IMAGE]))
            cache = tarball.parent.parent / "cache"  # the base build's cache (conftest._bundle): no new downloads
            full = _bundler_build(manifest, tmp_path / "full", cache)
            delta = _bundler_build(manifest, tmp_path / "delta", cache, "--delta-from", str(state))
        assert delta.name == "e2e-1.1-el9-x86_64-delta.tar.gz"
        sizes = (full.stat().st_size, delta.stat().st_size)
        print(f"\nfull bundle {sizes[0]} bytes, delta bundle {sizes[1]} bytes ({100 * sizes[1] / sizes[0]:.1f} %)")
        assert sizes[1] < sizes[0] / 4

        with TIMER.stage("e2e delta: a base blob missing on site"):
            delta_dir = rig.deliver_bundle(delta)
            bom = json.loads(node1.read_file(f"{delta_dir}/bundle.json"))
            omitted = bom["delta"]["omitted"]
            assert omitted["packages"] and omitted["blobs"] and omitted["files"]
            gone = omitted["blobs"][0]["sha256"]
            blob = f"{BLOBS}/{gone[:2]}/{gone}/data"
            before = tree(node1, delta_dir)
            storage_before = tree(node1, BLOBS)
            node1.exec(["mv", blob, "/root/blob-aside"])
            missing = run(node1, f"cd {delta_dir} && ./install.py complete-delta")
            node1.exec(["mv", "/root/blob-aside", blob])
            assert missing.returncode == 2, missing.stdout[-3000:]
            assert gone[:16] in missing.stdout and "Nothing was changed" in missing.stdout, missing.stdout[-3000:]
            assert tree(node1, delta_dir) == before and tree(node1, BLOBS) == storage_before

        with TIMER.stage("e2e delta: complete on site, verify, plan from it"):
            done = run(node1, f"cd {delta_dir} && ./install.py complete-delta")
            assert done.returncode == 0, done.stdout[-3000:]
            n = sum(len(v) for v in omitted.values())
            assert f"completed: {n} item(s) copied in from this site" in done.stdout, done.stdout[-2000:]
            assert tree(node1, BLOBS) == storage_before  # the registry storage is read, never written
            plan = run(node1, f"cd {delta_dir} && ./install.py plan")  # hosts from the cluster record
            assert plan.returncode == 0, plan.stdout[-4000:]
            assert "bundle OK" in plan.stdout and "delta bundle" not in plan.stdout, plan.stdout[-3000:]
            assert f"push {len(bom['images'])} image(s)" in plan.stdout, plan.stdout[-3000:]
    finally:
        with TIMER.stage("e2e delta: reset"):
            reset = run(node1, f"cd {base_dir} && ./install.py reset -y")
    assert reset.returncode == 0, reset.stdout[-3000:]
    assert clean_trap.connections() == [], LeakTrap.describe(clean_trap.connections())


def _bundler_build(manifest, out, cache, *extra: str):  # noqa: ANN001, ANN202
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / "bundler"
    r = subprocess.run([str(exe), "build", str(manifest), "-o", str(out), "--cache", str(cache), *extra],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    return next(out.glob("*.tar.gz"))
