"""The host lock (one operation at a time) and the record's bundle identity."""

import hashlib
import json
import os
import socket
import subprocess
import sys

import pytest

from installer import lock
from installer import record as rec
from installer.cli import main
from installer.errors import InstallerError

from .conftest import make_bundle
from .test_runner import Recorder, _fake_hosts, _runner


def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _write_lock(root, **data):
    path = lock.lock_path(str(root))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f)
    return path


def test_a_second_operation_refuses_naming_the_holder(tmp_path):
    first = lock.HostLock("add-node", str(tmp_path))
    op_id = first.acquire()
    held = lock.read(str(tmp_path))
    assert held["id"] == op_id and held["pid"] == os.getpid() and held["host"] == socket.gethostname()
    with pytest.raises(InstallerError) as e:
        lock.HostLock("install", str(tmp_path)).acquire()
    msg = str(e.value)
    assert "install cannot start: another operation holds the lock" in msg
    assert "operation add-node (id %s)" % op_id in msg and "PID %d" % os.getpid() in msg
    with pytest.raises(InstallerError) as e:  # --abort refuses a holder that still runs
        lock.abort(str(tmp_path))
    assert "still running" in str(e.value)
    first.release()
    assert lock.read(str(tmp_path)) is None


def test_a_stale_lock_is_reported_and_abort_releases_it(tmp_path, capsys):
    b = make_bundle(str(tmp_path / "b"))
    root = tmp_path / "root"
    path = _write_lock(root, operation="install", id="abc", host=socket.gethostname(), pid=_dead_pid(),
                       started="2026-01-01T00:00:00Z")
    with pytest.raises(InstallerError) as e:
        lock.HostLock("reset", str(root)).acquire()
    assert "stale lock" in str(e.value) and "no longer runs" in str(e.value) and "--abort" in str(e.value)
    # the interrupted operation is marked aborted in the record
    rdir = os.path.dirname(rec.serve_record_path(str(root)))
    with open(os.path.join(rdir, "cluster.json"), "w") as f:
        json.dump({"inventory": {"hosts": [{"address": "127.0.0.1", "role": "control-plane"}]},
                   "history": [{"operation": "install", "result": "in progress"}]}, f)
    assert main(["install", "--abort", "--bundle", b.root, "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "released the stale lock" in out and "aborted" in out
    assert not os.path.exists(path)
    data, _ = rec.find(str(root), b.root)
    assert data["history"][-1]["result"] == "aborted"
    assert main(["install", "--abort", "--bundle", b.root, "--root", str(root)]) == 0
    assert "nothing to release" in capsys.readouterr().out


def test_operations_hold_the_lock_and_release_it_also_after_a_failure(tmp_path, monkeypatch):
    runner = _runner(tmp_path, workers="")
    _fake_hosts(runner, monkeypatch, tmp_path)
    calls = []
    seen = []

    class Peek(Recorder):
        def run(self, ctx, host, conn, facts, journal, report=None):
            seen.append(lock.read(runner.root))
            return Recorder.run(self, ctx, host, conn, facts, journal, report)

    runner.phases = [Peek("work", calls)]
    runner.install()
    assert seen[0]["operation"] == "install" and seen[0]["pid"] == os.getpid()
    assert lock.read(runner.root) is None
    data, _ = rec.find(runner.root, runner.bundle.root)
    assert data["history"][-1]["id"] == seen[0]["id"]
    with open(os.path.join(runner.bundle.root, "bundle.json"), "rb") as f:
        assert data["bundle"]["sha256"] == hashlib.sha256(f.read()).hexdigest()
    runner.phases = [Recorder("broken", calls)]
    with pytest.raises(InstallerError):
        runner.install()
    assert lock.read(runner.root) is None
    runner.plan()  # a dry run takes no lock: it works while another operation holds it
    held = lock.HostLock("remove-node", runner.root)
    held.acquire()
    try:
        runner.phases = [Recorder("work", calls)]
        assert runner.plan() == 1
        with pytest.raises(InstallerError) as e:
            runner.install()
        assert "operation remove-node" in str(e.value)
    finally:
        held.release()
