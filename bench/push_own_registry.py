"""Benchmark: pushing a bundle's images into your own registry (TLS + htpasswd, loopback).

Run: PYTHONPATH=. .venv/bin/python bench/push_own_registry.py [--images 6] [--mb 16]
Generates a bundle directory with N single-arch images (one MB-sized random layer + a 1 MB one each) and, for
each tool, a fresh Debian docker-registry with TLS (throwaway CA) and htpasswd; then times a cold push and a
no-op re-run (wall time, whole command including interpreter start-up):

  install.py push-images   ./install.py push-images --to HOST/p --ca --credentials (installer.registry_push)
  bundler push             bundler push BUNDLE --to HOST/p --ca --credentials (bundler.registry.push)
  skopeo copy              one `skopeo copy oci:images:REF docker://HOST/p/...` per image, as people script it
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.images.helpers import layer, single  # noqa: E402
from tests.images.tls_registry import PASSWORD, USER, TLSRegistry, write_bundle  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--mb", type=int, default=16)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-push-"))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    try:
        imgs = {f"registry.k8s.io/img{i}:v1": single([layer(a.mb * 1_000_000, f"b{i}a"), layer(1_000_000, f"b{i}b")])
                for i in range(a.images)}
        root = write_bundle(work / "b", imgs)
        size = sum(f.stat().st_size for f in (root / "images" / "blobs" / "sha256").iterdir())
        print(f"{a.images} images, {size / 1e6:.0f} MB of blobs")
        for tool in ("install.py push-images", "bundler push", "skopeo copy"):
            reg = TLSRegistry(work / tool.replace(" ", "-"))
            creds = reg.credentials_file()
            common = ["--to", f"{reg.host}/p", "--ca", str(reg.ca), "--credentials", str(creds)]
            if tool.startswith("install"):
                cmds = [[sys.executable, "-m", "installer", "push-images", *common, "--bundle", str(root),
                         "--skip-bundle-check"]]
            elif tool.startswith("bundler"):
                cmds = [[sys.executable, "-m", "bundler.cli", "push", str(root), *common, "-q"]]
            else:
                cmds = [["skopeo", "copy", "--dest-cert-dir", str(reg.cert_dir()), "--dest-creds",
                         f"{USER}:{PASSWORD}", f"oci:{root}/images:{ref}",
                         f"docker://{reg.host}/p/{ref}"] for ref in imgs]
            try:
                times = []
                for _ in ("cold", "warm"):
                    t = time.monotonic()
                    for cmd in cmds:
                        subprocess.run(cmd, check=True, capture_output=True, env=env, timeout=600)
                    times.append(time.monotonic() - t)
                print(f"  {tool:24s} cold {times[0]:6.2f} s   re-run {times[1]:6.2f} s   "
                      f"({size / 1e6 / times[0]:.0f} MB/s cold)")
            finally:
                reg.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
