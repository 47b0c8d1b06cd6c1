"""`make demo`: the whole story on this machine, in one command, for a new user.

Sets up the stand-in upstream (yum repos, registry, download site on loopback), builds a bundle with
`bundler build` exactly as a user would, brings up three air-gapped hosts (systemd containers on an
isolated network), installs the cluster with `./install.py` from the unpacked bundle, and prints a short
report. The hosts stay up for you to look at until `make demo-clean`.

kubeadm / kubelet / kubectl on the hosts are test doubles (the real binaries cannot be had here); the
container runtime, the registry, the CNI plugins and everything the installer does are real.
"""

from __future__ import annotations

import json
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from rig import TIMER, LeakTrap, Rig, RigConfig  # noqa: E402

from tests.e2e import scenario  # noqa: E402

OUT = ROOT / "out" / "demo"


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1024
    return f"{n:.1f} TiB"


def demo() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    rig = Rig(RigConfig(keep=True))
    with TIMER.stage("demo: bring up 3 air-gapped hosts"):
        rig.up()
    with TIMER.stage("demo: stand-in upstream (yum repos, registry, download site)"):
        up = scenario.start_upstream(OUT / "upstream", scenario.cache_root())
    try:
        with TIMER.stage("demo: bundler build"):
            manifest = scenario.write_manifest(up, OUT / "demo.yaml", name="demo")
            tarball, summary = scenario.bundler_build(manifest, OUT / "bundle", OUT / "cache")
        with TIMER.stage("demo: copy the bundle and the OS media to node1"):
            bundle_dir = rig.deliver_bundle(tarball)
            scenario.put_media(rig.node1, up)
        rig.trap.reset()
        with TIMER.stage("demo: ./install.py on 3 hosts"):
            res = rig.node1.exec(["sh", "-c", scenario.install_command(bundle_dir, rig.install_args()) + " 2>&1"],
                                 check=False, timeout=1800)
        if res.returncode != 0:
            print(res.stdout[-5000:])
            print("demo: install.py failed (output above); the hosts are still up: make demo-clean removes them")
            return 1
        status = rig.node1.exec(["sh", "-c", scenario.install_command(bundle_dir, rig.install_args(), "status")
                                 + " 2>&1"], check=False, timeout=300).stdout
    finally:
        up.close()
        rig.down()  # keep=True: releases the rig lock and leaves the hosts running

    with tarfile.open(tarball) as t:
        bom = json.load(t.extractfile(next(m for m in t.getmembers() if m.name.endswith("/bundle.json"))))
    leaks = rig.trap.connections()
    print("\n" + "=" * 78)
    print(f"built   {tarball.relative_to(ROOT)}  ({human(tarball.stat().st_size)})")
    print(f"        Kubernetes {bom['kubernetes']['version']}, {bom['runtime']}, {bom['cni']}, for "
          f"{bom['target']['os']}/{bom['target']['arch']}: {len(bom['packages'])} packages, {len(bom['images'])} "
          f"images, {len(bom['files'])} files")
    print(summary.rstrip())
    print("\nhosts (install.py status):")
    print("\n".join("  " + line for line in status.strip().splitlines()[-8:]))
    print(f"\nleak trap: {len(leaks)} connection(s) to the real upstream hosts"
          + ("" if not leaks else ":\n" + LeakTrap.describe(leaks)))
    print("\n" + TIMER.summary())
    print(f"\ndone in {time.monotonic() - started:.0f} s. Look around:")
    print("  export DOCKER_HOST=unix:///var/tmp/airgap-rig/dockerd/docker.sock")
    print("  docker exec -it airgap-rig-node1 bash     # then: kubectl get nodes; cat /var/log/kubeadm-double.log")
    print("  make demo-clean                           # removes the hosts")
    return 0 if not leaks else 1


def clean() -> int:
    import shutil

    from rig.__main__ import main as rig_main

    rig_main(["down"])
    shutil.rmtree(OUT, ignore_errors=True)
    print("demo: hosts removed, out/demo deleted")
    return 0


if __name__ == "__main__":
    sys.exit(clean() if sys.argv[1:] == ["clean"] else demo())
