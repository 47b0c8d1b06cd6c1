"""The runner: operations are phase lists, hooks, check phases, every failed host named, --parallel."""

import threading
import time

import pytest

from installer import operations
from installer.cli import parse
from installer.context import Options
from installer.errors import InstallerError
from installer.inventory import from_flags
from installer.journal import Journal
from installer.output import Output
from installer.phases.base import Phase
from installer.runner import Runner
from installer.ssh import Local

from .conftest import make_bundle


def _runner(tmp_path, workers="10.0.0.12,10.0.0.13", **kw):
    b = make_bundle(str(tmp_path / "b"))
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    return Runner(b, from_flags("127.0.0.1", workers), Options(), Output(root=str(root), quiet=True),
                  root=str(root), skip_verify=True, local_addrs={"127.0.0.1"}, **kw)


def test_each_names_every_failed_host(tmp_path):
    runner = _runner(tmp_path)

    def func(h):
        if h.address != "127.0.0.1":
            raise InstallerError("disk full on %s" % h.address, phase="runtime", hint="Free some space")
        return "ok"

    with pytest.raises(InstallerError) as e:
        runner.each(runner.ctx.all_hosts, func)
    text = str(e.value)
    assert text.startswith("phase runtime: 2 of 3 hosts failed.")
    assert "host 10.0.0.12: disk full on 10.0.0.12" in text and "host 10.0.0.13: disk full on 10.0.0.13" in text
    assert text.count("Free some space") == 1 and "10.0.0.12.log" in text and "10.0.0.13.log" in text


def test_parallel_bounds_the_hosts_worked_on_at_once(tmp_path):
    runner = _runner(tmp_path, workers="10.0.0.12,10.0.0.13,10.0.0.14,10.0.0.15", parallel=2)
    lock = threading.Lock()
    now, peak = [0], [0]

    def func(h):
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        time.sleep(0.05)
        with lock:
            now[0] -= 1

    runner.each(runner.ctx.all_hosts, func)
    assert peak[0] == 2
    assert parse(["plan", "--parallel", "4"]).parallel == 4 and parse([]).parallel == 16
    with pytest.raises(SystemExit):
        parse(["--parallel", "0"])


def test_operations_are_phase_lists():
    install = operations.install()
    names = [p.name for p in install.phases]
    assert names[0] == "preflight" and names[-1] == "verify"
    assert [p.name for p in install.phases if p.is_check] == ["preflight", "verify"]
    assert operations.plan().dry_run and [p.name for p in operations.plan().phases] == names
    assert [p.name for p in operations.status().phases] == ["status"]
    assert [p.name for p in operations.reset().phases] == ["reset"]


class Recorder(Phase):
    def __init__(self, name, calls, kind="change", check_in_plan=True):
        self.name = self.title = name
        self.kind = kind
        self.check_in_plan = check_in_plan
        self.calls = calls

    def hosts(self, ctx):
        return ctx.all_hosts

    def prepare(self, ctx):
        self.calls.append("%s.prepare" % self.name)

    def after(self, ctx):
        self.calls.append("%s.after" % self.name)

    def cleanup(self, ctx):
        self.calls.append("%s.cleanup" % self.name)

    def check(self, ctx):
        self.calls.append("%s.check" % self.name)
        return [(None, "%s says hello" % self.name)]

    def dry_run(self, ctx, host, facts, conn=None):
        self.calls.append("%s.dry_run" % self.name)
        return ["would do it"]

    def run(self, ctx, host, conn, facts, journal, report=None):
        self.calls.append("%s.run" % self.name)
        if self.name == "broken":
            raise InstallerError("broke")
        return ["did it"]


def _fake_hosts(runner, monkeypatch, tmp_path):
    conn = Local("127.0.0.1", str(tmp_path / "root"))

    def prepare(op):
        runner.ctx.connections["127.0.0.1"] = conn
        for p in op.phases:
            p.prepare(runner.ctx)
        runner.gather()

    monkeypatch.setattr(runner, "prepare", prepare)
    monkeypatch.setattr(runner, "gather", lambda hosts=None, phases=(): runner.ctx.journals.update(
        {"127.0.0.1": Journal(conn)}) or runner.ctx.facts.update({"127.0.0.1": None}))


def test_hooks_and_check_phases_run_in_order(tmp_path, monkeypatch):
    runner = _runner(tmp_path, workers="")
    _fake_hosts(runner, monkeypatch, tmp_path)
    calls = []
    runner.phases = [Recorder("pre", calls, "check"), Recorder("work", calls), Recorder("post", calls, "check", False)]
    assert runner.plan() == 1
    assert calls == ["pre.prepare", "work.prepare", "post.prepare", "pre.check", "work.dry_run",
                     "pre.cleanup", "work.cleanup", "post.cleanup"]
    del calls[:]
    assert runner.install() == 1
    assert calls == ["pre.prepare", "work.prepare", "post.prepare", "pre.check", "work.run", "work.after",
                     "post.check", "pre.cleanup", "work.cleanup", "post.cleanup"]
    assert runner.ctx.journals["127.0.0.1"].phase_done("work")
    del calls[:]
    runner.phases = [Recorder("broken", calls), Recorder("never", calls)]
    with pytest.raises(InstallerError) as e:
        runner.install()
    assert "phase broken" in str(e.value) and "run ./install.py again" in str(e.value)
    assert calls == ["broken.prepare", "never.prepare", "broken.run", "broken.cleanup", "never.cleanup"]
    assert runner.ctx.journals["127.0.0.1"].data["phases"]["broken"]["status"] == "failed"
