"""SBOM generation time and size: a synthetic unpacked bundle with N packages (default 5,000), and optionally a
real bundle (`--bundle PATH`, tarball or directory, e.g. one built from the test upstreams).

The synthetic bundle is generated, not downloaded: bundle.json with N RPMs (licenses mixed: SPDX expressions
and legacy tags), 40 images of which 10 are multi-arch indexes (amd64, arm64/v8 and an attestation), 12 files,
and the real installer. Timed: what `bundler build` does (inventory from the tree + both documents written)
and what `bundler sbom` does on a tarball (one sequential read + one document).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bundler.bundle.dirscan import find_top_dir as bundle_top  # noqa: E402
from bundler.bundle.installer_files import installer_source  # noqa: E402
from bundler.sbom import PATHS, render, write_into  # noqa: E402
from bundler.sbom.source import bundle_inventory  # noqa: E402

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
LICENSES = ["MIT", "GPL-2.0-or-later", "ASL 2.0", "GPLv2+ and LGPLv2+", "BSD-3-Clause OR Apache-2.0", ""]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def synthetic(top: Path, n: int) -> None:
    """An unpacked bundle with n packages: only what the SBOM reads (bundle.json, index blobs, the installer)."""
    blobs = top / "images/blobs/sha256"
    blobs.mkdir(parents=True)
    packages = [{"name": f"pkg{i:05d}", "epoch": i % 3, "version": f"{i % 17}.{i % 5}.{i}", "release": f"{i % 9}.el9",
                 "arch": ("x86_64", "noarch")[i % 2], "repo": ("baseos", "appstream", "kubernetes")[i % 3],
                 "path": f"repo/Packages/pkg{i:05d}.rpm", "size": 100_000 + i, "sha256": sha(b"rpm%d" % i),
                 "license": LICENSES[i % len(LICENSES)],
                 "source": f"https://mirror.example.org/el9/Packages/pkg{i:05d}.rpm"} for i in range(n)]
    images = []
    for i in range(40):
        ref = f"registry.example.org/team{i % 4}/image{i:02d}:v1.{i}"
        if i % 4 == 0:
            kids = [{"mediaType": MANIFEST, "digest": "sha256:" + sha(b"%d-%s" % (i, a.encode())), "size": 1000,
                     "platform": {"os": o, "architecture": a, **({"variant": "v8"} if a == "arm64" else {})}}
                    for o, a in (("linux", "amd64"), ("linux", "arm64"), ("unknown", "unknown"))]
            index = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": kids}).encode()
            (blobs / sha(index)).write_bytes(index)
            images.append({"ref": ref, "digest": f"sha256:{sha(index)}", "mediaType": INDEX, "size": 10 << 20,
                           "platforms": ["linux/amd64", "linux/arm64/v8"]})
        else:
            images.append({"ref": ref, "digest": "sha256:" + sha(ref.encode()), "mediaType": MANIFEST,
                           "size": 5 << 20, "platforms": ["linux/amd64"]})
    files = [{"name": f"tool{i}", "kind": "binary", "path": f"files/tool{i}", "size": 1 << 20,
              "sha256": sha(b"tool%d" % i), "source": f"https://downloads.example.org/tool{i}"} for i in range(12)]
    bom = {"schemaVersion": 1, "builder": {"name": "airgap-bundler", "version": "0.1.0"}, "name": "synthetic",
           "version": "1.0.0", "target": {"os": "el9", "arch": "x86_64"}, "kubernetes": {"version": "1.30.4"},
           "runtime": "containerd", "cni": "calico", "install": "packages", "packages": packages, "images": images,
           "files": files}
    (top / "bundle.json").write_text(json.dumps(bom, indent=2, sort_keys=True) + "\n")
    src = installer_source()
    shutil.copytree(src, top / "installer", ignore=shutil.ignore_patterns("__pycache__", "install.py"))
    shutil.copyfile(src / "install.py", top / "install.py")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(label: str, bundle: Path, build_tree: Path | None) -> None:
    rows = []
    if build_tree is not None:
        t = time.perf_counter()
        write_into(build_tree, 1577836800)
        rows.append(("build: inventory + both documents", time.perf_counter() - t))
    for fmt in PATHS:
        t = time.perf_counter()
        data = render(bundle_inventory(bundle), fmt)
        rows.append((f"`bundler sbom --format {fmt}` ({len(data) / 1024:.0f} KiB)", time.perf_counter() - t))
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sbom-bench-out-") as out:
        subprocess.run([sys.executable, "-m", "bundler.cli", "sbom", str(bundle), "-o", f"{out}/doc.json"],
                       check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    rows.append(("the CLI, `bundler sbom BUNDLE -o FILE` (with start-up)", time.perf_counter() - t))
    print(f"\n{label}")
    for what, secs in rows:
        print(f"  {what:58} {secs:6.2f} s")
    if build_tree is not None:
        for rel in PATHS.values():
            print(f"  {rel:58} {(build_tree / rel).stat().st_size / 1024:8.0f} KiB")
    print(f"  peak RSS of this process so far {peak_rss_mib():.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packages", type=int, default=5000)
    ap.add_argument("--bundle", type=Path, help="also measure this bundle (tarball or directory)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sbom-bench-") as tmp:
        top = Path(tmp) / "synthetic-1.0.0-el9-x86_64"
        synthetic(top, args.packages)
        tarball = Path(tmp) / f"{top.name}.tar.gz"
        with tarfile.open(tarball, "w:gz") as tar:
            tar.add(top, arcname=top.name)
        measure(f"synthetic bundle.json: {args.packages} packages, 40 images (10 multi-arch), 12 files", tarball,
                top)
    if args.bundle:
        with tempfile.TemporaryDirectory(prefix="sbom-bench-") as tmp:
            tree = None
            if args.bundle.is_dir():  # what the build does, on a copy
                tree = Path(tmp) / "copy"
                shutil.copytree(bundle_top(args.bundle), tree)
            measure(f"{args.bundle}", args.bundle, tree)


if __name__ == "__main__":
    main()
