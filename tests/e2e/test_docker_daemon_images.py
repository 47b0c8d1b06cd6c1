"""`docker-daemon:NAME:TAG` images (an operator's own builds) exported from a real Docker daemon: the rig's
dockerd, which holds an image the test makes with `docker import` (no registry, no network)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path


def _rootfs_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = b"operator's own application\n"
        ti = tarfile.TarInfo("app/VERSION")
        ti.size, ti.mtime = len(data), 0
        t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def test_docker_daemon_image_is_exported_into_the_store(rig, tmp_path):
    subprocess.run(["docker", "import", "-", "myapp:1"], input=_rootfs_tar(), check=True, capture_output=True,
                   timeout=120)
    layer_id = json.loads(subprocess.run(["docker", "image", "inspect", "myapp:1"], check=True, capture_output=True,
                                         text=True).stdout)[0]["RootFS"]["Layers"][0]
    manifest = tmp_path / "own.yaml"
    manifest.write_text("apiVersion: bundler/v1\nkind: Bundle\nmetadata: {name: own, version: '1'}\nspec:\n"
                        "  target: {os: el9, arch: x86_64}\n  images: ['docker-daemon:myapp:1']\n")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "bundler.cli", "build", str(manifest), "-o", str(out), "--cache",
                        str(tmp_path / "cache"), "--format", "dir", "-q"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    store = out / "own-1-el9-x86_64" / "images"
    bom = json.loads((store.parent / "bundle.json").read_text())
    assert [i["ref"] for i in bom["images"]] == ["docker.io/library/myapp:1"]
    raw = subprocess.run(["skopeo", "inspect", "--raw", f"oci:{store}:docker.io/library/myapp:1"],
                         capture_output=True, text=True)
    assert raw.returncode == 0, raw.stderr
    layer = json.loads(raw.stdout)["layers"][0]
    # the layer is the daemon's own bytes: its digest is the diff ID docker reports
    assert layer["digest"] == layer_id
    blob = Path(store, "blobs", "sha256", layer_id.split(":")[1]).read_bytes()
    assert "sha256:" + hashlib.sha256(blob).hexdigest() == layer_id
    subprocess.run(["docker", "rmi", "myapp:1"], capture_output=True, timeout=60)
