"""Scale on the e2e rig (issue 13): install and add-node wall time against host count.

For each N (default 3 6 10): the rig with N+1 hosts, `./install.py` with node1 as the control plane and
node2..nodeN as workers, then `./install.py add-node --workers nodeN+1`. The bundle is built once.

The doubles' time is separated from the orchestration's own: every kubeadm/kubectl TEST DOUBLE invocation
records its start (t0) and its duration so far (elapsed) in /var/log/kube*-double.log on its host; the union
of those intervals over all hosts during an operation is "doubles"; wall minus that is the installer's own
time (SSH, dnf, containerd, image import, waits). The kubelet double is a service, not a step, so not counted.

Not part of `make bench` or CI (minutes of work, the whole e2e rig, root): run it alone, as root:

    PYTHONPATH=$PWD .venv/bin/python bench/rig_scale.py [N ...]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT))

from rig import Rig, RigConfig  # noqa: E402

from tests.e2e import scenario  # noqa: E402

OUT = ROOT / "out" / "bench-scale"
LOGS = "/var/log/kubeadm-double.log /var/log/kubectl-double.log"


def intervals(nodes, since: float) -> list[tuple[float, float]]:  # noqa: ANN001 - rig.nodes.Node
    """[start, end) of every double invocation that started at or after `since`, on all hosts."""
    spans: dict[tuple[str, str, int], tuple[float, float]] = {}
    for node in nodes:
        text = node.exec(["sh", "-c", f"cat {LOGS} 2>/dev/null"], check=False).stdout
        for line in text.splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if "t0" not in e or e["t0"] < since:
                continue
            key = (node.name, str(e.get("argv", [""])[:1]), e["pid"])
            t0, end = spans.get(key, (e["t0"], e["t0"]))
            spans[key] = (t0, max(end, e["t0"] + e["elapsed"]))
    return sorted(spans.values())


def union(spans: list[tuple[float, float]], until: float) -> float:
    total, cur_s, cur_e = 0.0, None, None
    for s, e in spans:
        e = min(e, until)
        if cur_e is None or s > cur_e:
            total += (cur_e - cur_s) if cur_e is not None else 0.0
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    return total + ((cur_e - cur_s) if cur_e is not None else 0.0)


def timed(rig: Rig, cmd: str) -> dict:
    start = time.time()
    res = rig.node1.exec(["sh", "-c", cmd + " 2>&1"], check=False, timeout=3600)
    end = time.time()
    if res.returncode != 0:
        raise SystemExit(f"rig_scale: failed: {cmd}\n{res.stdout[-4000:]}")
    spans = intervals(rig.nodes, start - 1)
    doubles = union(spans, end)
    return {"wall": end - start, "doubles": doubles, "calls": len(spans), "own": end - start - doubles}


def mem_used_mib() -> int:
    info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    kib = lambda k: int(info[k].split()[0])  # noqa: E731
    return (kib("MemTotal") - kib("MemAvailable")) // 1024


def one(n: int, tarball: Path, up: scenario.Upstream) -> dict:
    rig = Rig(RigConfig(node_count=n + 1, keep=False))
    rig.up()
    try:
        mem_idle = mem_used_mib()
        nodes = rig.nodes.nodes
        bundle_dir = rig.deliver_bundle(tarball)
        scenario.put_media(rig.node1, up)
        rig.node1.exec(["rm", "-f", f"{bundle_dir}/cluster.json"])
        workers = ",".join(x.ip for x in nodes[1:n])
        install = timed(rig, scenario.install_command(bundle_dir, ["--control-plane", nodes[0].ip,
                                                                   "--workers", workers]))
        add = timed(rig, f"cd {bundle_dir} && ./install.py add-node --workers {nodes[n].ip}")
        mem_peak = mem_used_mib()
        return {"hosts": n, "install": install, "add-node": add, "mem_rig_idle_mib": mem_idle,
                "mem_after_mib": mem_peak}
    finally:
        rig.down()


def main(argv: list[str]) -> int:
    counts = [int(a) for a in argv] or [3, 6, 10]
    OUT.mkdir(parents=True, exist_ok=True)
    up = scenario.start_upstream(OUT / "upstream", scenario.cache_root())
    rows = []
    try:
        manifest = scenario.write_manifest(up, OUT / "scale.yaml", name="scale")
        tarball, _ = scenario.bundler_build(manifest, OUT / "bundle", OUT / "cache")
        for n in counts:
            rows.append(one(n, tarball, up))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        up.close()
    print(f"\n{'hosts':>5} | {'op':<9} | {'wall s':>7} | {'doubles s':>9} | {'own s':>6} | calls | mem MiB")
    for r in rows:
        for op in ("install", "add-node"):
            t = r[op]
            print(f"{r['hosts']:>5} | {op:<9} | {t['wall']:7.1f} | {t['doubles']:9.1f} | {t['own']:6.1f} | "
                  f"{t['calls']:5} | {r['mem_after_mib']}")
    (OUT / "results.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
