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
from tests.installer.conftest import el9_facts, make_bundle, make_ctx


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


FAKE_ETCDCTL = r'''#!/usr/bin/env python3
# fake etcdctl for the local backup/restore test (records its subcommand)
import json, os, sys
a = sys.argv[1:]
def val(flag):
    return a[a.index(flag) + 1]
sub = [w for w in a if w in ("member", "snapshot", "endpoint")][0]
what = a[a.index(sub) + 1]
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write("etcdctl %s %s%s\n" % (sub, what, " " + val("--name") if "--name" in a else ""))
if sub == "member":
    print(json.dumps({"members": [{"ID": 1, "name": os.environ["FAKE_NODE"],
                                   "peerURLs": ["https://127.0.0.1:2380"]}]}))
elif sub == "endpoint":
    print("127.0.0.1:2379 is healthy")
elif what == "save":
    open(a[a.index("save") + 1], "w").write("SNAPSHOT\n")
elif what == "status":
    print(json.dumps({"totalSize": 9, "revision": 7}))
elif what == "restore":
    d = val("--data-dir")
    assert open(a[a.index("restore") + 1]).read() == "SNAPSHOT\n"
    os.makedirs(d + "/member")
    open(d + "/member/name", "w").write(val("--name") + " " + val("--initial-cluster"))
'''
FAKE_CRICTL = """#!/bin/sh
for a in "$@"; do case "$a" in --name=*) n="${a#--name=}";; esac; done
pod=$(echo "$n" | sed 's/^\\^//; s/\\$$//')
echo "ps $pod" >> "$FAKE_LOG"
[ -f "$FAKE_ROOT/etc/kubernetes/manifests/$pod.yaml" ] && echo abc123
exit 0
"""


def test_backup_then_restore_on_a_local_host(tmp_path, monkeypatch, capsys):
    """backup then restore end to end through a Local host rooted in a temp dir (fake etcdctl in the bundle's etcd
    image, fake crictl/kubectl on PATH): the archive at both ends, the pods stopped in reverse order and started in
    order, the restored data directory swapped in, a second run has nothing left to do."""
    b = make_bundle(str(tmp_path / "b"))
    _etcd_image(b, [_layer({"usr/local/bin/etcdctl": FAKE_ETCDCTL.encode()})])
    with open(b.path("bundle.json"), "w") as f:
        json.dump(b.data, f)
    root = tmp_path / "root"
    pki = root / "etc/kubernetes/pki"
    pki.mkdir(parents=True)
    (pki / "ca.crt").write_bytes(_cert(tmp_path))
    (root / "etc/kubernetes/manifests").mkdir()
    for pod in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        (root / "etc/kubernetes/manifests" / (pod + ".yaml")).write_text("- --data-dir=/var/lib/etcd\n")
    (root / "var/lib/etcd").mkdir(parents=True)
    (root / "var/lib/etcd/old").write_text("before\n")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "crictl").write_text(FAKE_CRICTL)
    (fake / "kubectl").write_text("#!/bin/sh\nexit 0\n")
    for f in fake.iterdir():
        f.chmod(0o755)
    log = tmp_path / "calls.log"
    monkeypatch.setenv("PATH", "%s:%s" % (fake, os.environ["PATH"]))
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("FAKE_ROOT", str(root))
    monkeypatch.setenv("FAKE_NODE", "cp1")
    from installer import facts
    monkeypatch.setattr(facts, "gather", lambda conn, files=(), dirs=(): el9_facts(hostname="cp1"))  # fast
    record = {"state": "installed", "bundle": {"name": "k8s"}, "options": {}, "history": [],
              "inventory": {"hosts": [{"address": "127.0.0.1", "role": "control_plane"}]}}
    with open(os.path.join(b.root, "cluster.json"), "w") as f:
        json.dump(record, f)
    out = str(tmp_path / "backups")
    common = ["--bundle", b.root, "--root", str(root)]
    assert main(["backup", "-o", out, "--keep", "1"] + common) == 0
    assert main(["backup", "-o", out, "--keep", "1"] + common) == 0
    names = sorted(os.listdir(out))
    assert len(names) == 2 and names[1] == names[0] + ".sha256"  # --keep 1 here ...
    kept = sorted(os.listdir(str(root / "var/lib/airgap-installer/backups")))
    assert kept == names  # ... and on the control plane
    path = os.path.join(out, names[0])
    members = archive.read(path)
    assert members["etcd/snapshot.db"] == b"SNAPSHOT\n" and "pki.tar.gz" in members
    meta = archive.meta_of(members)
    assert meta["caFingerprint"] == archive.ca_fingerprint((pki / "ca.crt").read_bytes())
    capsys.readouterr()
    log.write_text("")
    assert main(["plan", "restore", path] + common) == 0
    assert "restore preflight OK" in capsys.readouterr().out and log.read_text().count("etcdctl snapshot") == 0
    assert main(["restore", path, "-y"] + common) == 0
    calls = log.read_text().splitlines()
    restores = [i for i, c in enumerate(calls) if c.startswith("etcdctl snapshot restore")]
    assert len(restores) == 1 and calls[restores[0]] == "etcdctl snapshot restore cp1"

    def order(lines):
        ps = [c.split()[1] for c in lines if c.startswith("ps ")]
        return [p for i, p in enumerate(ps) if i == 0 or ps[i - 1] != p]
    pods = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]
    assert order(calls[:restores[0]]) == pods[::-1] and order(calls[restores[0]:]) == pods, calls
    assert (root / "var/lib/etcd/member/name").read_text().endswith("=https://127.0.0.1:2380")
    tag = archive.sha256_file(path)[:12]
    assert (root / ("var/lib/etcd.before-restore-%s/old" % tag)).read_text() == "before\n"
    assert sorted(os.listdir(str(root / "etc/kubernetes/manifests"))) == [
        "etcd.yaml", "kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml"]
    assert not (root / "etc/airgap-bundler/lock").exists()
    capsys.readouterr()
    assert main(["plan", "restore", path] + common) == 0
    assert "plan restore: nothing left to do" in capsys.readouterr().out
