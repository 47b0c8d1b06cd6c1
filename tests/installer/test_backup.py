"""Backups: the archive (0600, sha256 beside it, a changed byte refused before anything else), retention at both
ends, etcdctl taken from the bundle's etcd image layers, and restore's preflight (CA fingerprint, members)."""

import gzip
import hashlib
import io
import json
import os
import stat
import subprocess
import tarfile

import pytest

from installer import backup_archive as archive
from installer import etcd_tools
from installer import restore as rst
from installer.cli import main
from installer.errors import InstallerError
from tests.installer.conftest import make_bundle, make_ctx


def _archive(tmp_path, name="airgap-backup-k8s-20260101T000000Z.tar.gz", meta=None):
    path = str(tmp_path / "out" / name)
    meta = meta or {"format": 1, "members": [{"name": "node0", "peerURLs": ["https://10.0.0.11:2380"]}],
                    "caFingerprint": None, "created": "2026-01-01T00:00:00Z"}
    digest = archive.write(path, {"meta.json": json.dumps(meta).encode(), "etcd/snapshot.db": b"SNAP\n"})
    return path, digest


def test_archive_is_private_checksummed_and_reads_back(tmp_path):
    path, digest = _archive(tmp_path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path + ".sha256").st_mode) == 0o600
    with open(path + ".sha256") as f:
        assert f.read() == "%s  %s\n" % (digest, os.path.basename(path))
    # the sha256 file is in sha256sum's format
    assert subprocess.run(["sha256sum", "-c", path + ".sha256"], cwd=os.path.dirname(path),
                          capture_output=True).returncode == 0
    assert archive.verify(path) == digest
    members = archive.read(path)
    assert members["etcd/snapshot.db"] == b"SNAP\n" and archive.meta_of(members)["format"] == 1
    assert not [n for n in os.listdir(os.path.dirname(path)) if ".part" in n]


def test_a_changed_archive_is_refused_in_one_paragraph(tmp_path):
    path, digest = _archive(tmp_path)
    with open(path, "ab") as f:
        f.write(b"\0")
    with pytest.raises(InstallerError) as e:
        archive.verify(path)
    text = str(e.value)
    assert "does not match its checksum" in text and digest in text and "nothing was changed" in text
    assert "\n" not in e.value.message
    os.unlink(path + ".sha256")
    with pytest.raises(InstallerError) as e:
        archive.verify(path)
    assert "has no checksum file" in str(e.value)


def test_cli_refuses_a_tampered_backup_before_touching_anything(tmp_path, capsys):
    b = make_bundle(str(tmp_path / "b"))
    root = tmp_path / "root"
    root.mkdir()
    path, _ = _archive(tmp_path)
    with open(path, "r+b") as f:
        f.seek(40)
        byte = f.read(1)
        f.seek(40)
        f.write(bytes([byte[0] ^ 1]))
    assert main(["restore", path, "-y", "--bundle", b.root, "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the backup %s does not match its checksum" % path)
    assert "Traceback" not in err
    assert os.listdir(str(root)) == []  # no lock, no log, no record


def test_retention_keeps_the_newest_at_both_ends(tmp_path):
    for day in ("01", "02", "03", "04"):
        _archive(tmp_path, "airgap-backup-k8s-202601%sT000000Z.tar.gz" % day)
    other = tmp_path / "out" / "unrelated.tar.gz"
    other.write_bytes(b"x")
    d = str(tmp_path / "out")
    remote = str(tmp_path / "remote")
    subprocess.run(["cp", "-a", d, remote], check=True)
    assert archive.prune(d, 2) == ["airgap-backup-k8s-20260101T000000Z.tar.gz",
                                   "airgap-backup-k8s-20260102T000000Z.tar.gz"]
    assert sorted(os.listdir(d)) == ["airgap-backup-k8s-20260103T000000Z.tar.gz",
                                     "airgap-backup-k8s-20260103T000000Z.tar.gz.sha256",
                                     "airgap-backup-k8s-20260104T000000Z.tar.gz",
                                     "airgap-backup-k8s-20260104T000000Z.tar.gz.sha256", "unrelated.tar.gz"]
    out = subprocess.run(["sh", "-c", archive.prune_command(remote, 2)], capture_output=True, text=True)
    assert out.stdout.split() == ["airgap-backup-k8s-20260101T000000Z.tar.gz",
                                  "airgap-backup-k8s-20260102T000000Z.tar.gz"]
    assert sorted(os.listdir(remote)) == sorted(os.listdir(d))
    assert archive.prune(d, 5) == []


def _layer(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue())


def _blob(images, data):
    digest = hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.join(images, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(images, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest


def _etcd_image(bundle, layers):
    images = bundle.path("images")
    descs = [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": _blob(images, lay),
              "size": len(lay)} for lay in layers]
    man = json.dumps({"schemaVersion": 2, "layers": descs, "config": {}}).encode()
    index = {"schemaVersion": 2, "manifests": [{"digest": _blob(images, man), "size": len(man), "annotations": {
        "io.airgap-bundler.image.ref": "registry.k8s.io/etcd:3.5.15-0"}}]}
    with open(os.path.join(images, "index.json"), "w") as f:
        json.dump(index, f)
    bundle.data["images"].append({"ref": "registry.k8s.io/etcd:3.5.15-0", "digest": "sha256:" + "9" * 64})


def test_etcdctl_comes_from_the_top_layer_of_the_bundles_etcd_image(tmp_path, bundle):
    _etcd_image(bundle, [_layer({"usr/local/bin/etcdctl": b"old", "usr/local/bin/etcdutl": b"util"}),
                         _layer({"./usr/local/bin/etcdctl": b"new"})])
    out = str(tmp_path / "x")
    os.mkdir(out)
    tools = etcd_tools.extract(bundle, out)
    assert open(tools["etcdctl"], "rb").read() == b"new" and open(tools["etcdutl"], "rb").read() == b"util"
    assert os.access(tools["etcdctl"], os.X_OK)


def test_no_etcdctl_in_the_image_is_a_clear_error(tmp_path, bundle):
    _etcd_image(bundle, [_layer({"etc/airgap-e2e-image": b"x"})])
    with pytest.raises(InstallerError) as e:
        etcd_tools.extract(bundle, str(tmp_path))
    assert "no etcdctl in the bundle's etcd image registry.k8s.io/etcd:3.5.15-0" in str(e.value)


class _Conn:
    def __init__(self, files):
        self.files = files

    def read_file(self, p):
        return self.files.get(p)


def _cert(tmp_path, name="ca.crt"):
    p = str(tmp_path / name)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", p + ".key", "-out", p,
                    "-days", "2", "-subj", "/CN=kubernetes"], check=True, capture_output=True)
    with open(p, "rb") as f:
        return f.read()


def _restore_ctx(bundle, tmp_path, meta_members, ca_in_backup, ca_on_host, new_cluster=False):
    ctx = make_ctx(bundle, cp="10.0.0.11,10.0.0.14", workers="10.0.0.12")
    ctx.connections = {h.label: _Conn({"/etc/kubernetes/pki/ca.crt": ca_on_host}) for h in ctx.all_hosts}
    ctx.restore = {"path": "/b.tar.gz", "sha256": "a" * 64, "new_cluster": new_cluster,
                   "meta": {"members": meta_members, "caFingerprint": archive.ca_fingerprint(ca_in_backup)}}
    return ctx


def test_restore_preflight_checks_the_ca_and_the_members(tmp_path, bundle):
    ca, other = _cert(tmp_path), _cert(tmp_path, "other.crt")
    fp = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256"], input=ca, capture_output=True)
    assert archive.ca_fingerprint(ca) == fp.stdout.decode().split("=")[1].strip().replace(":", "").lower()
    good = [{"name": "node0", "peerURLs": ["https://10.0.0.11:2380"]},
            {"name": "node1", "peerURLs": ["https://10.0.0.14:2380"]}]
    ctx = _restore_ctx(bundle, tmp_path, good, ca, ca)
    assert "restore preflight OK" in rst.Preflight().check(ctx)[0][1]
    bad = [good[0], {"name": "node7", "peerURLs": ["https://10.0.0.99:2380"]}]
    with pytest.raises(InstallerError) as e:
        rst.Preflight().check(_restore_ctx(bundle, tmp_path, bad, ca, ca))
    assert "node7 (https://10.0.0.99:2380)" in str(e.value) and "Nothing was changed" in str(e.value)
    with pytest.raises(InstallerError) as e:
        rst.Preflight().check(_restore_ctx(bundle, tmp_path, good, ca, other))
    assert "is not the backup's" in str(e.value) and "--new-cluster" in str(e.value)
    assert rst.Preflight().check(_restore_ctx(bundle, tmp_path, good, ca, other, new_cluster=True))


def test_a_half_done_restore_of_another_archive_blocks_a_new_one():
    class J:
        data = {"restore": {"archive": "b" * 64, "done": ["staged"]}}
    with pytest.raises(InstallerError) as e:
        rst.state(J(), "a" * 64)
    assert "interrupted restore of another backup" in str(e.value)
    assert rst.state(J(), "b" * 64)["done"] == ["staged"]
    J.data["restore"]["finished"] = "2026"
    assert rst.state(J(), "a" * 64) == {"archive": "a" * 64, "done": []}
