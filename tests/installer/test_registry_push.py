"""registry_push against a real registry (Debian's docker-registry), checked with skopeo."""

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time

import pytest

from installer.registry_push import Layout, Pusher, Registry

pytestmark = pytest.mark.skipif(not (shutil.which("docker-registry") and shutil.which("skopeo")),
                                reason="docker-registry and skopeo are needed")


def _blob(root, data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    p = os.path.join(root, "blobs", "sha256", d[7:])
    with open(p, "wb") as f:
        f.write(data)
    return {"digest": d, "size": len(data)}


def make_layout(root, big=False):
    os.makedirs(os.path.join(root, "blobs", "sha256"))
    with open(os.path.join(root, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion": "1.0.0"}')
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as t:
        content = os.urandom(200000) if big else b"hello from the bundle\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(content)
        info.mtime = 0
        t.addfile(info, io.BytesIO(content))
    raw = tar_bytes.getvalue()
    layer_gz = gzip.compress(raw, mtime=0) if hasattr(gzip, "compress") else raw
    layer = _blob(root, layer_gz)
    layer["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
    config = {"architecture": "amd64", "os": "linux", "config": {},
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]}}
    cfg = _blob(root, json.dumps(config, sort_keys=True).encode())
    cfg["mediaType"] = "application/vnd.oci.image.config.v1+json"
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": cfg, "layers": [layer]}
    # deliberately not canonical JSON (indent, key order): the registry must keep these exact bytes
    man = _blob(root, json.dumps(manifest, indent=3).encode())
    man["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
    descs = []
    for ref in ("registry.k8s.io/pause:3.9", "docker.io/calico/node:v3.28.0"):
        d = dict(man)
        d["annotations"] = {"org.opencontainers.image.ref.name": ref,
                            "io.airgap-bundler.image.ref": ref}
        descs.append(d)
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": descs}, f)
    return man["digest"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def registry(tmp_path):
    port = free_port()
    cfg = tmp_path / "config.yml"
    cfg.write_text("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\n"
                   "http:\n  addr: 127.0.0.1:%d\n" % (tmp_path / "storage", port))
    proc = subprocess.Popen(["docker-registry", "serve", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    reg = Registry("http://127.0.0.1:%d" % port)
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            if reg.ping() == 200:
                break
        except Exception:
            pass
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("registry did not start")
    yield port
    proc.terminate()
    proc.wait(10)


def skopeo_digest(port, repo):
    out = subprocess.check_output(["skopeo", "inspect", "--tls-verify=false", "--raw",
                                   "docker://127.0.0.1:%d/%s" % (port, repo)])
    return "sha256:" + hashlib.sha256(out).hexdigest()


def skopeo_inspect_digest(port, repo):
    out = subprocess.check_output(["skopeo", "inspect", "--tls-verify=false",
                                   "docker://127.0.0.1:%d/%s" % (port, repo)])
    return json.loads(out.decode())["Digest"]


def test_push_then_repush_uploads_nothing(tmp_path, registry):
    layout_dir = str(tmp_path / "oci")
    digest = make_layout(layout_dir)
    reg = Registry("http://127.0.0.1:%d" % registry)
    changed = Pusher(reg, Layout(layout_dir)).push_all()
    assert changed == 2
    assert reg.stats["blobs_uploaded"] == 2  # config + layer, once
    assert reg.stats["blobs_mounted"] == 2  # reused by the second repository
    assert skopeo_inspect_digest(registry, "registry.k8s.io/pause:3.9") == digest
    assert skopeo_digest(registry, "registry.k8s.io/pause:3.9") == digest
    assert skopeo_inspect_digest(registry, "docker.io/calico/node:v3.28.0") == digest

    again = Registry("http://127.0.0.1:%d" % registry)
    assert Pusher(again, Layout(layout_dir)).push_all() == 0
    assert again.stats["blobs_uploaded"] == 0 and again.stats["blobs_skipped"] == 4
    assert again.stats["manifests"] == 0


def test_chunked_upload_and_docker_bare_names(tmp_path, registry):
    layout_dir = str(tmp_path / "oci")
    digest = make_layout(layout_dir, big=True)
    reg = Registry("http://127.0.0.1:%d" % registry, chunk_size=65536)
    Pusher(reg, Layout(layout_dir)).push_all(docker_bare=True)
    assert skopeo_inspect_digest(registry, "calico/node:v3.28.0") == digest
    assert skopeo_inspect_digest(registry, "docker.io/calico/node:v3.28.0") == digest
    out = subprocess.check_output(["skopeo", "inspect", "--tls-verify=false",
                                   "docker://127.0.0.1:%d/registry.k8s.io/pause:3.9" % registry])
    assert len(json.loads(out.decode())["Layers"]) == 1


def test_basic_auth(tmp_path):
    crypt = pytest.importorskip("crypt")
    if not getattr(crypt, "METHOD_BLOWFISH", None):
        pytest.skip("no bcrypt")
    from installer.errors import InstallerError
    from installer.phases.registry import bcrypt_hash
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("pusher:{}\n".format(bcrypt_hash("s3cret")))
    port = free_port()
    cfg = tmp_path / "config.yml"
    cfg.write_text("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\n"
                   "http:\n  addr: 127.0.0.1:%d\nauth:\n  htpasswd:\n    realm: r\n    path: %s\n"
                   % (tmp_path / "storage", port, htpasswd))
    proc = subprocess.Popen(["docker-registry", "serve", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        good = Registry("http://127.0.0.1:%d" % port, "pusher", "s3cret")
        for _ in range(150):
            try:
                if good.ping() == 200:
                    break
            except InstallerError:
                pass
            time.sleep(0.1)
        layout_dir = str(tmp_path / "oci")
        digest = make_layout(layout_dir)
        bad = Registry("http://127.0.0.1:%d" % port, "pusher", "wrong")
        with pytest.raises(InstallerError, match="refused the push credentials"):
            Pusher(bad, Layout(layout_dir)).push_all()
        assert Pusher(good, Layout(layout_dir)).push_all() == 2
        out = subprocess.check_output(["skopeo", "inspect", "--tls-verify=false", "--creds", "pusher:s3cret",
                                       "docker://127.0.0.1:%d/registry.k8s.io/pause:3.9" % port])
        assert json.loads(out.decode())["Digest"] == digest
    finally:
        proc.terminate()
        proc.wait(10)
