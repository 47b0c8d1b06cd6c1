"""Changes, journal and reset run for real through a Local connection rooted in a temp dir."""

import os

from installer.changes import PKG_TOOL, MoveAside, WriteFile
from installer.facts import gather
from installer.journal import JOURNAL, Journal
from installer.phases.host_prep import HostPrep
from installer.phases.media_repo import MediaRepo
from installer.reset import reset_steps, restore_files
from installer.ssh import Local

from .conftest import make_ctx


def _write(root, path, text):
    p = os.path.join(root, path.lstrip("/"))
    if not os.path.isdir(os.path.dirname(p)):
        os.makedirs(os.path.dirname(p))
    with open(p, "w") as f:
        f.write(text)


def _read(root, path):
    p = os.path.join(root, path.lstrip("/"))
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return f.read()


def test_write_backup_and_restore(tmp_path):
    root = str(tmp_path)
    _write(root, "/etc/fstab", "/dev/sda2 none swap defaults 0 0\n")
    _write(root, "/etc/yum.repos.d/rocky.repo", "[baseos]\n")
    conn = Local(root=root)
    j = Journal(conn)
    assert WriteFile("/etc/fstab", "#x\n").apply(conn, j) is True
    assert WriteFile("/etc/fstab", "#x\n").apply(conn, j) is False  # unchanged
    assert WriteFile("/etc/fstab", "#y\n").apply(conn, j) is True
    assert WriteFile("/etc/sysctl.d/99-airgap-kubernetes.conf", "a = 1\n", 0o600).apply(conn, j) is True
    assert oct(os.stat(os.path.join(root, "etc/sysctl.d/99-airgap-kubernetes.conf")).st_mode & 0o777) == "0o600"
    assert MoveAside("/etc/yum.repos.d/rocky.repo").apply(conn, j) is True
    assert MoveAside("/etc/yum.repos.d/rocky.repo").apply(conn, j) is False
    assert _read(root, "/etc/yum.repos.d/rocky.repo") is None
    # the journal is on the "host"
    assert Journal.load(conn).data["files"]["/etc/fstab"] == {"backup": "/var/lib/airgap-installer/backup/etc/fstab"}
    assert _read(root, JOURNAL) is not None
    restore_files(conn, Journal.load(conn), lambda t: None)
    assert _read(root, "/etc/fstab") == "/dev/sda2 none swap defaults 0 0\n"  # the original, not '#x'
    assert _read(root, "/etc/sysctl.d/99-airgap-kubernetes.conf") is None
    assert _read(root, "/etc/yum.repos.d/rocky.repo") == "[baseos]\n"


def test_reset_steps_order():
    j = Journal(None)
    j.data["phases"]["kubeadm_init"] = {"status": "done"}
    j.data["undo"] = ["systemctl disable --now airgap-repo", "kubeadm reset -f", "rm -rf /opt/airgap"]
    j.data["packages"] = ["chrony", "kubeadm"]
    steps = [c for _, c in reset_steps(j)]
    # kubeadm reset first and only once, then the undo commands newest first, then packages
    assert steps == ["kubeadm reset -f", "rm -rf /opt/airgap", "systemctl disable --now airgap-repo",
                     PKG_TOOL + " -y --disablerepo='*' remove chrony kubeadm"]


def test_facts_gather_local_root(tmp_path):
    root = str(tmp_path)
    _write(root, "/etc/hosts", "127.0.0.1 localhost\n")
    _write(root, "/etc/yum.repos.d/a.repo", "[a]\n")
    f = gather(Local(root=root), files=["/etc/hosts", "/etc/missing"], dirs=["/etc/yum.repos.d"])
    assert f["complete"]
    assert f.file("/etc/hosts") == "127.0.0.1 localhost\n"
    assert f.file("/etc/missing") is None
    assert f["dirs"]["/etc/yum.repos.d"] == ["a.repo"]
    assert f["arch"] == os.uname()[4]
    assert f["cpus"] >= 1 and f["mem_mb"] > 0
    assert f["is_local"] is True


def test_host_prep_and_repo_converge_for_real(tmp_path, bundle):
    """Apply the file changes of two phases into a temp root; re-gathered facts then plan nothing."""
    root = str(tmp_path / "host")
    _write(root, "/etc/hosts", "127.0.0.1 localhost\n")
    _write(root, "/etc/fstab", "/dev/sda1 / xfs defaults 0 0\n/dev/sda2 none swap defaults 0 0\n")
    _write(root, "/etc/yum.repos.d/rocky.repo", "[baseos]\n")
    ctx = make_ctx(bundle)
    w = ctx.inventory.workers[0]
    conn = Local(root=root)
    j = Journal(conn)
    for phase in (MediaRepo(), HostPrep()):
        files = phase.watched_files(ctx, w)
        dirs = phase.watched_dirs(ctx, w)
        facts = gather(conn, files, dirs)
        facts.update(rpms={"chrony": "4"}, swap_active=False, modules=["overlay", "br_netfilter"],
                     services={"chronyd": {"active": True, "enabled": True, "exists": True}})
        ctx.facts[w.label] = facts
        for c in phase.plan(ctx, w, facts):
            if c.kind == "file":
                c.apply(conn, j)
        facts = gather(conn, files, dirs)
        facts.update(rpms={"chrony": "4"}, swap_active=False, modules=["overlay", "br_netfilter"],
                     services={"chronyd": {"active": True, "enabled": True, "exists": True}})
        left = [c for c in phase.plan(ctx, w, facts) if c.kind == "file"]
        assert left == [], phase.name
    assert "#airgap-installer# /dev/sda2 none swap" in _read(root, "/etc/fstab")
    assert "http://10.0.0.11:8089/repo" in _read(root, "/etc/yum.repos.d/airgap-bundle.repo")
    restore_files(conn, Journal.load(conn), lambda t: None)
    assert _read(root, "/etc/fstab") == "/dev/sda1 / xfs defaults 0 0\n/dev/sda2 none swap defaults 0 0\n"
    assert _read(root, "/etc/hosts") == "127.0.0.1 localhost\n"
    assert _read(root, "/etc/yum.repos.d/rocky.repo") == "[baseos]\n"
    assert _read(root, "/etc/yum.repos.d/airgap-bundle.repo") is None


def test_kubeadm_image_check_runs_kubeadm(tmp_path, bundle, monkeypatch):
    """The check before kubeadm init asks the installed kubeadm (here a TEST DOUBLE shell script: no kubeadm
    exists on this machine) and stops with the missing image named, before init runs."""
    import pytest

    from installer.errors import InstallerError
    from installer.phases.kubeadm_init import CONFIG, image_check

    bindir = tmp_path / "bin"
    bindir.mkdir()
    listed = tmp_path / "listed.txt"
    fake = bindir / "kubeadm"
    fake.write_text('#!/bin/sh\n# kubeadm TEST DOUBLE: prints the image list it was given\n'
                    '[ "$1 $2 $3 $4 $5" = "config images list --config %s" ] || exit 2\ncat %s\n' % (CONFIG, listed))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (bindir, os.environ["PATH"]))
    ctx = make_ctx(bundle)
    conn = Local(root=str(tmp_path / "root"))
    j = Journal(conn)

    listed.write_text("registry.k8s.io/kube-apiserver:v1.30.4\nregistry.k8s.io/pause:3.9\n")
    assert image_check(ctx).apply(conn, j) is False  # a check changes nothing

    listed.write_text("registry.k8s.io/kube-apiserver:v1.30.4\nregistry.k8s.io/etcd:3.5.15-0\n")
    with pytest.raises(InstallerError) as e:
        image_check(ctx).apply(conn, j)
    text = str(e.value)
    assert "kubeadm 1.30.4 needs registry.k8s.io/etcd:3.5.15-0, which the bundle" in text
    assert "kubeadm init was not run" in text and "spec.images" in text
