"""First-class changes: PutFile (idempotent by digest), Service says when it changed nothing, changes are
hashable, the Connection interface, ssh -V asked once."""

import hashlib
import subprocess

from installer import ssh
from installer.changes import Callback, Command, PutFile, Service, WriteFile
from installer.inventory import Host
from installer.journal import Journal
from installer.ssh import SSH, Connection, Local


def test_put_file_is_idempotent_by_digest(tmp_path):
    src = tmp_path / "helm"
    src.write_bytes(b"#!/bin/sh\necho helm\n")
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    conn = Local("h", str(tmp_path / "host"))
    journal = Journal(conn)
    change = PutFile(str(src), "/usr/local/bin/helm", 0o755, digest)
    assert change.describe() == "install /usr/local/bin/helm"
    assert change.apply(conn, journal) is True
    assert (tmp_path / "host/usr/local/bin/helm").read_bytes() == src.read_bytes()
    assert oct((tmp_path / "host/usr/local/bin/helm").stat().st_mode & 0o777) == "0o755"
    assert journal.data["files"]["/usr/local/bin/helm"] == {"created": True}
    assert change.apply(conn, journal) is False  # same digest: nothing to do
    (tmp_path / "host/usr/local/bin/helm").write_bytes(b"other")
    assert change.apply(conn, journal) is True  # changed on the host: put back
    assert PutFile(str(src), "/x", title="upload helm").describe() == "upload helm"


class ServiceHost:
    """Answers systemctl is-active/is-enabled from two sets; records the other commands."""

    root = "/"
    label = "h"

    def __init__(self, active=(), enabled=()):
        self.active, self.enabled, self.commands = set(active), set(enabled), []

    def run(self, cmd, check=True, **kw):
        word, name = cmd.split()[1], cmd.split()[-1]
        ok = name in (self.active if word == "is-active" else self.enabled)
        return type("R", (), {"ok": ok, "rc": 0 if ok else 1, "stdout": "", "stderr": ""})()

    def check(self, cmd, what=None, **kw):
        self.commands.append(cmd)

    def write_file(self, path, data, mode=0o644):
        pass


def test_service_apply_says_whether_it_changed_something():
    conn = ServiceHost(active=["chronyd"], enabled=["chronyd"])
    journal = Journal(conn)
    assert Service("chronyd").apply(conn, journal) is False and conn.commands == []
    assert journal.data["restart"] == ["chronyd"] and journal.data["undo"] == []  # it ran before: reset restarts it
    assert Service("chronyd", restart=True).apply(conn, journal) is True
    assert Service("containerd").apply(conn, journal) is True
    assert conn.commands[-1] == "systemctl enable --now containerd"
    assert journal.data["undo"] == ["systemctl stop containerd", "systemctl disable containerd"]


def test_changes_are_hashable_and_compare_by_what_they_do():
    a = Callback("push images", lambda conn, j: True)
    b = Callback("push images", lambda conn, j: False)
    assert a == b and len(set([a, b])) == 1
    assert len(set([WriteFile("/a", "x"), WriteFile("/a", "x"), Command("true"), PutFile("s", "/d")])) == 3


def test_connections_implement_one_interface():
    for cls in (Local, SSH):
        assert issubclass(cls, Connection)
        for name in ("run", "put"):
            assert getattr(cls, name) is not getattr(Connection, name), (cls, name)
    assert Local().is_local is True
    assert SSH(Host("10.0.0.12", "worker")).is_local is False


def test_ssh_version_is_asked_once_per_process(monkeypatch):
    calls = []
    real = subprocess.Popen

    def popen(argv, *a, **kw):
        calls.append(argv)
        return real(["sh", "-c", "echo 'OpenSSH_8.7p1, OpenSSL 3.0.7' >&2"], *a, **kw)

    monkeypatch.setattr(ssh, "_ssh_version", {})
    monkeypatch.setattr(subprocess, "Popen", popen)
    conn = SSH(Host("10.0.0.12", "worker"))
    for _ in range(3):
        assert "StrictHostKeyChecking=accept-new" in conn.base_opts()
    assert calls == [["ssh", "-V"]]
