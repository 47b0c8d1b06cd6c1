"""Benchmark: our parallel, deduplicating pull vs `skopeo copy` (sequential, as people script it).

Run: .venv/bin/python bench/images_vs_skopeo.py [--mb 200] [--images 8]
Starts a local docker-registry, pushes N images that share 2 layers (random data generated once and cached in
/tmp/airgap-bench-images), then times both into fresh OCI layouts and reports wall time and peak RSS of each
(each tool runs in its own process; peak RSS from wait4). Ours is also run on a set with 1/20 of the layer
size: equal peak RSS shows memory does not grow with layer size (blobs are streamed, never buffered).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.images.helpers import Img, Registry, put_image, single  # noqa: E402

DATA = Path("/tmp/airgap-bench-images")


def dataset(total_mb: int, n: int) -> list[Img]:
    """n images: 2 shared layers + 1 own layer each, about total_mb of gzip'd random data, cached on disk."""
    per = total_mb * (1 << 20) // (n + 2)
    d = DATA / f"{total_mb}mb-{n}"
    meta = d / "layers.json"
    if not meta.is_file():
        import gzip
        import hashlib
        import io
        import tarfile

        d.mkdir(parents=True, exist_ok=True)
        names = []
        for i in range(n + 2):
            payload = os.urandom(per)
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tar:
                info = tarfile.TarInfo(f"layer{i}.bin")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            raw = buf.getvalue()
            (d / f"{i}.gz").write_bytes(gzip.compress(raw, compresslevel=1, mtime=0))
            names.append({"gz": f"{i}.gz", "diff_id": "sha256:" + hashlib.sha256(raw).hexdigest()})
        meta.write_text(json.dumps(names))
    names = json.loads(meta.read_text())

    layers = []
    for e in names:
        gz = (d / e["gz"]).read_bytes()
        layers.append((gz, e["diff_id"]))
    imgs = []
    for i in range(n):
        imgs.append(single([layers[0], layers[1], layers[2 + i]], label=f"bench{i}"))
    return imgs


def run_measured(cmd: list[str], env: dict | None = None) -> tuple[float, int]:
    """(seconds, peak RSS in KiB) of one child process."""
    t = time.monotonic()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed: {p.stderr.read().decode()[-2000:] if p.stderr else ''}")
    return time.monotonic() - t, usage.ru_maxrss


OURS = """
import sys, time
from bundler.fetch.cache import Cache
from bundler.images.pull import pull_images
host, store, cache, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
recs = pull_images([f"{host}/bench/img{i}:1" for i in range(n)], store, platforms=["linux/amd64"],
                   cache=Cache(cache), insecure={host})
assert len(recs) == n
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--push", metavar="HOST", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.push:
        imgs = dataset(a.mb, a.images)
        for i, img in enumerate(imgs):
            put_image(a.push, f"bench/img{i}", "1", img)
        size = sum(len(b) for img in imgs for b in img.blobs.values() if len(b) > 4096)
        unique = sum(len(b) for b in {d: b for img in imgs for d, b in img.blobs.items()}.values())
        print(json.dumps([size, unique]))
        return
    work = Path(tempfile.mkdtemp(prefix="bench-images-"))
    regs = []
    try:
        results = {}
        for label, mb in (("large", a.mb), ("small", max(1, a.mb // 20))):
            reg = Registry(work / f"reg-{label}")
            regs.append(reg)
            # Data generation and the push run in a child: a child forked from a big parent would inherit its
            # peak RSS, so this process stays small and the measured peaks are the tools' own.
            out = subprocess.run([sys.executable, __file__, "--push", reg.host, "--mb", str(mb),
                                  "--images", str(a.images)], check=True, capture_output=True, text=True)
            size, unique = json.loads(out.stdout)
            ours = run_measured([sys.executable, "-c", OURS, reg.host, str(work / f"ours-{label}"),
                                 str(work / f"cache-{label}"), str(a.images)],
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
            sk_time, sk_rss = 0.0, 0
            if label == "large":
                for i in range(a.images):
                    t, rss = run_measured(["skopeo", "copy", "--src-tls-verify=false",
                                           f"docker://{reg.host}/bench/img{i}:1", f"oci:{work / 'skopeo'}:img{i}"])
                    sk_time += t
                    sk_rss = max(sk_rss, rss)
            results[label] = {"mb_referenced": size / 2**20, "mb_unique": unique / 2**20, "ours_s": ours[0],
                              "ours_rss_mib": ours[1] / 1024, "skopeo_s": sk_time, "skopeo_rss_mib": sk_rss / 1024}
        L, S = results["large"], results["small"]
        print(f"images: {a.images}, 2 shared layers; large set {L['mb_referenced']:.0f} MB referenced, "
              f"{L['mb_unique']:.0f} MB unique")
        print(f"ours   : {L['ours_s']:6.2f} s  peak RSS {L['ours_rss_mib']:6.1f} MiB")
        print(f"skopeo : {L['skopeo_s']:6.2f} s  peak RSS {L['skopeo_rss_mib']:6.1f} MiB  (sequential skopeo copy)")
        print(f"time ratio skopeo/ours: {L['skopeo_s'] / L['ours_s']:.2f}x")
        print(f"ours on a {S['mb_unique']:.0f} MB set: {S['ours_s']:.2f} s, peak RSS {S['ours_rss_mib']:.1f} MiB "
              f"(vs {L['ours_rss_mib']:.1f} MiB for {L['mb_unique']:.0f} MB: memory independent of layer size)")
    finally:
        for r in regs:
            r.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
