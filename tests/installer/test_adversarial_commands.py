"""Adversarial inputs for every day-2 install.py command (upgrade, export-state, complete-delta, push-images, doctor,
node prepare/apply/finish, add-node, remove-node) and their plan forms: a missing, damaged or foreign cluster
record, a record whose state is not installed, bad options, paths that are directories, FIFOs or missing, a held
and a stale lock, a tampered bundle, hostile join files, credentials and kubectl answers, and a seeded fuzzer over
the JSON these commands read. The house rule asserted everywhere: exactly one `error:` paragraph, no traceback,
nothing written under --root (nor beside the bundle) when the command refuses, and never a hang (FIFO cases run
in a subprocess with a timeout).

No host is ever contacted: record hosts are TEST-NET addresses (192.0.2.0/24) and the cases that would get past
their refusals replace installer.runner.Runner with a double that stops there (`ReachedRunner`)."""

import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import traceback

import pytest

from installer import cli, joinfile, lock
from installer import record as rec
from installer import runner as _runner_mod
from installer.errors import InstallerError
from tests import jsonfuzz

from .conftest import make_bundle, write_sums

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOW = time.time()
DEAD_PID = 4194303 + 1  # above pid_max's ceiling: never a live process


class Reached(InstallerError):
    """Raised by the Runner double: the command got past every refusal (a clean, expected stop here)."""


class ReachedRunner:
    def __init__(self, *a, **kw):
        raise Reached("REACHED the runner")


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A bundle, an empty --root and a valid record of an installed cluster (TEST-NET hosts) made from it."""
    monkeypatch.setattr("installer.runner.Runner", ReachedRunner)
    monkeypatch.setattr("installer.cli.Runner", ReachedRunner)
    b = make_bundle(str(tmp_path / "b"))
    root = tmp_path / "root"
    root.mkdir()
    return Site(b, str(root), tmp_path)


class Site:
    def __init__(self, bundle, root, tmp):
        self.bundle = bundle
        self.root = root
        self.tmp = tmp
        self.record = good_record(bundle)

    def write_record(self, content):
        p = rec.serve_record_path(self.root)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(content if isinstance(content, bytes) else (
                content.encode("utf-8", "surrogateescape") if isinstance(content, str)
                else json.dumps(content).encode()))
        return p

    def join_file(self, doc=None):
        p = str(self.tmp / "join.json")
        with open(p, "w") as f:
            json.dump(join_doc(self.bundle) if doc is None else doc, f)
        return p

    def argv(self, words, check=False):
        return list(words) + ["--bundle", self.bundle.root, "--root", self.root] + (
            [] if check else ["--skip-bundle-check"])


def good_record(b, host="192.0.2.11"):
    return {"state": "installed", "recordVersion": 1, "kubernetes": "1.30.4",
            "bundle": {"name": "k8s", "version": "1.0.0", "sha256": rec.bundle_sha256(b.root), "dir": b.root},
            "inventory": {"source": "test", "hosts": [
                {"address": host, "role": "control_plane", "nodeName": "cp1"},
                {"address": "192.0.2.12", "role": "worker", "nodeName": "w1"}]},
            "options": {}, "serveHost": {"address": host, "name": "cp1"},
            "history": [{"operation": "install", "result": "ok"}]}


def join_doc(b):
    return {"kind": joinfile.KIND, "version": 1, "created": joinfile.iso(NOW), "expires": joinfile.iso(NOW + 3600),
            "record": good_record(b), "bundle": b.data, "bundleSha256": rec.bundle_sha256(b.root),
            "gpgkeys": ["kubernetes.gpg"], "token": "abcdef.0123456789abcdef", "caCertHash": "sha256:" + "a" * 64,
            "registryCA": "PEM\n", "media": {"kind": "dir", "path": "/mnt/media", "repos": ["BaseOS"]},
            "serveAddress": "192.0.2.11", "apiEndpoint": "192.0.2.11:6443",
            "hosts": [{"address": "192.0.2.13", "role": "worker", "user": "root", "port": 22}]}


def snapshot(*dirs):
    """{path: (kind, size, sha256)} of every entry under the directories (FIFOs are never opened)."""
    out = {}
    for top in dirs:
        for d, subdirs, files in os.walk(top):
            for name in subdirs + files:
                p = os.path.join(d, name)
                st = os.lstat(p)
                if os.path.isfile(p) and not os.path.islink(p):
                    with open(p, "rb") as f:
                        out[p] = ("file", st.st_size, hashlib.sha256(f.read()).hexdigest())
                else:
                    out[p] = ("dir" if os.path.isdir(p) else "other", 0, "")
    return out


def changes(before, after):
    """What changed, except the run's own log (var/log/airgap-installer: noted in the report, not a host change)."""
    diff = set(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return sorted(p for p in diff if "/var/log/airgap-installer" not in p and not p.endswith(("/var", "/var/log")))


def call(argv, capsys):
    """main(argv) in this process: (exit code, stdout, stderr); any exception that escapes fails the test."""
    try:
        rc = cli.main(argv)
    except SystemExit as e:  # argparse: a usage error (2) or --help/--version (0)
        rc = e.code
    except Exception:  # noqa: BLE001 - a traceback is exactly what these tests look for
        cap = capsys.readouterr()
        pytest.fail("traceback for %s:\n%s\nstdout: %s\nstderr: %s" % (argv, traceback.format_exc(), cap.out, cap.err))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def assert_refused(rc, out, err, *words, code=1):
    assert rc == code, (rc, out, err)
    assert "Traceback" not in out + err
    assert err.count("error:") == 1 and err.strip(), err  # one paragraph: the error line (argparse: usage + error)
    assert "REACHED" not in err, "the command went on past what it should have refused: %s" % err
    for w in words:
        assert w in err, (w, err)


def refuses(site, capsys, words, *expect, code=1, check=False):
    before = snapshot(site.root, site.bundle.root)
    rc, out, err = call(site.argv(words, check), capsys)
    assert_refused(rc, out, err, *expect, code=code)
    assert changes(before, snapshot(site.root, site.bundle.root)) == []
    return err


# -- every command that reads the cluster record, against a missing, damaged, foreign or unfinished one -----------
RECORD_COMMANDS = {
    "upgrade": ["upgrade", "-y"], "plan-upgrade": ["plan", "upgrade"], "export-state": ["export-state"],
    "doctor": ["doctor"], "node-prepare": ["node", "prepare", "--hosts", "192.0.2.20"],
    "plan-node-prepare": ["plan", "node", "prepare", "--hosts", "192.0.2.20"],
    "node-finish": ["node", "finish"], "plan-node-finish": ["plan", "node", "finish"],
    "add-node": ["add-node", "--workers", "192.0.2.21"],
    "plan-add-node": ["plan", "add-node", "--workers", "192.0.2.21"],
    "remove-node": ["remove-node", "w1", "-y"], "plan-remove-node": ["plan", "remove-node", "w1"],
    "backup": ["backup"], "plan-backup": ["plan", "backup"], "certs-check": ["certs", "check"],
    "certs-renew": ["certs", "renew", "-y"], "plan-certs-renew": ["plan", "certs", "renew"],
    "certs-timer": ["certs", "timer", "--enable"], "restore": ["restore", "-y"], "plan-restore": ["plan", "restore"],
}


def _with(**kw):
    def make(b):
        r = good_record(b)
        r.update(kw)
        return r
    return make


BAD_RECORDS = {
    "truncated": lambda b: json.dumps(good_record(b))[:57],
    "empty": lambda b: "",
    "nul-bytes": lambda b: b"\x00\xff\xfe{",
    "a-list": lambda b: "[1, 2]",
    "deeply-nested": lambda b: "[" * 100000 + "]" * 100000,
    "hosts-a-number": _with(inventory={"hosts": 5}),
    "hosts-a-dict": _with(inventory={"hosts": {"address": "192.0.2.11"}}),
    "host-a-list": _with(inventory={"hosts": [[1]]}),
    "host-without-role": _with(inventory={"hosts": [{"address": "192.0.2.11"}]}),
    "port-a-word": _with(inventory={"hosts": [{"address": "192.0.2.11", "role": "control_plane", "port": "x"}]}),
    "options-a-string": _with(options="selinux=permissive"),
    "options-a-list": _with(options=["x"]),
    "bundle-a-string": _with(bundle="k8s"),
    "serve-host-a-string": _with(serveHost="192.0.2.11"),
    "history-a-number": _with(history=7),
    "state-installing": _with(state="installing"),
    "state-a-list": _with(state=["installed"]),
    "state-missing": lambda b: dict((k, v) for k, v in good_record(b).items() if k != "state"),
}
ACCEPTS_ANY_STATE = ("doctor", "export-state")  # doctor checks a half-installed cluster; export-state measures


@pytest.mark.parametrize("what", sorted(BAD_RECORDS))
@pytest.mark.parametrize("cmd", sorted(RECORD_COMMANDS))
def test_a_damaged_record_is_one_error_naming_it(site, capsys, cmd, what):
    path = site.write_record(BAD_RECORDS[what](site.bundle))
    if cmd.endswith("node-finish"):
        site.join_file()
        words = RECORD_COMMANDS[cmd] + ["--join", str(site.tmp / "join.json")]
    elif cmd.endswith("restore"):
        words = RECORD_COMMANDS[cmd] + [_backup(site.tmp)]
    else:
        words = RECORD_COMMANDS[cmd]
    if what.startswith("state-") and cmd in ACCEPTS_ANY_STATE:
        return  # not a refusal for these two; their damaged-record cases are above
    if cmd == "export-state":  # it needs no host entry: measured (to stdout), or refused naming the record
        os.makedirs(os.path.join(site.root, "opt", "airgap"))
        before = snapshot(site.root, site.bundle.root)
        rc, out, err = call(site.argv(words), capsys)
        assert "Traceback" not in err and changes(before, snapshot(site.root, site.bundle.root)) == []
        if rc == 0:
            assert json.loads(out)["stateVersion"] == 1
        else:
            assert_refused(rc, out, err, path)
        return
    err = refuses(site, capsys, words)
    if not what.startswith("state-"):
        assert path in err or "cluster record" in err, err


@pytest.mark.parametrize("cmd", sorted(RECORD_COMMANDS))
def test_no_record(site, capsys, cmd):
    words = RECORD_COMMANDS[cmd]
    if cmd.endswith("node-finish"):
        words = words + ["--join", site.join_file()]
    if cmd.endswith("restore"):
        words = words + [_backup(site.tmp)]
    if cmd == "export-state":  # it measures a serving host; without one it says so
        refuses(site, capsys, words, "serves no bundle repository")
        return
    refuses(site, capsys, words, "cluster record")


@pytest.mark.parametrize("cmd", ["add-node", "plan-add-node", "node-prepare", "plan-node-prepare"])
def test_a_record_of_another_bundle_is_refused(site, capsys, cmd):
    r = good_record(site.bundle)
    r["bundle"] = {"name": "other", "version": "9", "sha256": "0" * 64}
    site.write_record(r)
    refuses(site, capsys, RECORD_COMMANDS[cmd], "is not the one installed")


def test_the_installed_bundle_changed_after_install_is_refused(site, capsys):
    """bundle.json edited and SHA256SUMS regenerated: the bundle check passes, the record's sha256 does not."""
    site.write_record(good_record(site.bundle))
    with open(os.path.join(site.bundle.root, "bundle.json")) as f:
        data = json.load(f)
    data["kubernetes"]["version"] = "1.30.5"
    with open(os.path.join(site.bundle.root, "bundle.json"), "w") as f:
        json.dump(data, f)
    write_sums(site.bundle.root)
    for cmd in ("add-node", "node-prepare"):
        refuses(site, capsys, RECORD_COMMANDS[cmd], "is not the one installed", check=True)


# -- options: unknown, contradictory, of the wrong type ---------------------------------------------------------
BAD_OPTIONS = [
    (["upgrade", "--max-unavailable", "0"], 2, "not a number"),
    (["upgrade", "--max-unavailable", "two"], 2, "not a number"),
    (["upgrade", "--drain-timeout", "-5"], 2, "not a number"),
    (["upgrade", "--frobnicate"], 2, "unrecognized arguments"),
    (["plan", "upgrade", "-y"], 2, "unrecognized arguments"),
    (["plan", "upgrade", "--abort"], 2, "unrecognized arguments"),
    (["upgrade", "--parallel", "0"], 2, "not a number"),
    (["node", "enlist"], 2, "invalid choice"),
    (["node", "finish", "--wait", "soon"], 2, "invalid int"),
    (["node", "prepare", "--ssh-port", "ssh"], 2, "invalid int"),
    (["node", "prepare", "--hosts", "192.0.2.20", "--ttl", "2d"], 1, "--ttl"),
    (["node", "prepare", "--hosts", ""], 1, "no new host"),
    (["node", "prepare", "--hosts", ",,"], 1, "no new host"),
    (["push-images"], 2, "--to"),
    (["push-images", "--to", "https://a://b"], 1, "--to"),
    (["push-images", "--to", "registry.example:99999"], 1, "--to"),
    (["push-images", "--to", "registry.example/UPPER"], 1, "prefix"),
    (["plan", "push-images", "--to", ""], 1, "--to"),
    (["doctor", "--pod", "a/b/c"], 1, "--pod"),
    (["doctor", "--pod", "/"], 1, "--pod"),
    (["doctor", "--service", "//"], 1, "--service"),
    (["doctor", "--parallel", "-1"], 2, "not a number"),
    (["doctor", "--abort"], 2, "unrecognized arguments"),
    (["export-state", "--abort"], 2, "unrecognized arguments"),
    (["complete-delta", "extra"], 2, "unrecognized arguments"),
    (["add-node", "--control-plane", "192.0.2.30,192.0.2.31"], 1, "one at a time"),
    (["add-node", "--control-plane", "192.0.2.30", "--workers", "192.0.2.31"], 1, "one at a time"),
    (["add-node"], 1, "no new host"),
    (["add-node", "--workers", "192.0.2.12"], 1, "192.0.2.12"),  # already in the cluster
    (["remove-node", "w1", "--drain-timeout", "0"], 2, "not a number"),
    (["upgrade", "-y", "--skip-unreachable", "nosuchhost"], 1, "REACHED"),  # checked by the runner: reached it
]


@pytest.mark.parametrize("words,code,expect", BAD_OPTIONS, ids=[" ".join(w) for w, _, _ in BAD_OPTIONS])
def test_bad_options(site, capsys, words, code, expect):
    site.write_record(good_record(site.bundle))
    before = snapshot(site.root, site.bundle.root)
    rc, out, err = call(site.argv(words), capsys)
    if expect == "REACHED":
        assert rc == 1 and "REACHED" in err and "Traceback" not in err
        return
    assert_refused(rc, out, err, expect, code=code)
    assert changes(before, snapshot(site.root, site.bundle.root)) == []


def test_push_images_refuses_an_image_not_in_the_bundle(site, capsys):
    images = os.path.join(site.bundle.root, "images")
    with open(os.path.join(images, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": []}, f)
    refuses(site, capsys, ["push-images", "--to", "127.0.0.1:1", "--image", "registry.k8s.io/nope:1"],
            "--image registry.k8s.io/nope:1")


# -- paths that are directories, missing, not what they claim ------------------------------------------------------
def _fixtures(site):
    d = site.tmp / "adir"
    d.mkdir(exist_ok=True)
    f = site.tmp / "afile"
    f.write_text("x\n")
    return {"dir": str(d), "missing": str(site.tmp / "missing" / "x"), "under-a-file": str(f / "x")}


@pytest.mark.parametrize("kind", ["dir", "missing", "under-a-file"])
def test_path_options_that_are_not_files(site, capsys, kind):
    p = _fixtures(site)[kind]
    site.write_record(good_record(site.bundle))
    for words, expect in ((["node", "apply", "--join", p], "join file"),
                          (["node", "finish", "--join", p], "join file"),
                          (["plan", "node", "apply", "--join", p], "join file"),
                          (["push-images", "--to", "127.0.0.1:1", "--credentials", p], "--credentials"),
                          (["push-images", "--to", "127.0.0.1:1", "--ca", p], "--ca"),
                          (["plan", "push-images", "--to", "127.0.0.1:1", "--ca", p], "--ca")):
        refuses(site, capsys, words, expect, p)


@pytest.mark.parametrize("kind", ["dir", "missing", "under-a-file"])
def test_bundle_option_that_is_not_a_bundle(site, capsys, kind):
    p = _fixtures(site)[kind]
    site.write_record(good_record(site.bundle))
    for words in (["upgrade", "-y"], ["plan", "upgrade"], ["complete-delta"], ["push-images", "--to", "127.0.0.1:1"],
                  ["node", "prepare", "--hosts", "192.0.2.20"]):
        before = snapshot(site.root)
        rc, out, err = call(words + ["--bundle", p, "--root", site.root], capsys)
        assert_refused(rc, out, err)
        assert changes(before, snapshot(site.root)) == []


def test_export_state_output_that_cannot_be_written(site, capsys):
    os.makedirs(os.path.join(site.root, "opt", "airgap"))
    site.write_record(good_record(site.bundle))
    f = _fixtures(site)
    for p in (f["dir"], f["missing"], f["under-a-file"]):
        err = refuses(site, capsys, ["export-state", "-o", p], "cannot write")
        assert p in err
    assert os.listdir(f["dir"]) == [] and not [n for n in os.listdir(str(site.tmp)) if ".tmp-" in n]


def test_bundle_json_of_the_wrong_shape(site, capsys):
    site.write_record(good_record(site.bundle))
    for text in ("[1]", '"bundle"', "{}", '{"schemaVersion": 1, "target": [], "kubernetes": "1.30"}'):
        with open(os.path.join(site.bundle.root, "bundle.json"), "w") as f:
            f.write(text)
        for words in (["upgrade", "-y"], ["push-images", "--to", "127.0.0.1:1"], ["doctor"]):
            refuses(site, capsys, words)


def test_a_tampered_bundle_is_refused_before_anything(site, capsys):
    site.write_record(good_record(site.bundle))
    with open(os.path.join(site.bundle.root, "files", "registry"), "a") as f:
        f.write("# changed after the check was written\n")
    for words in (["upgrade", "-y"], ["plan", "upgrade"], ["complete-delta"], ["plan", "complete-delta"],
                  ["push-images", "--to", "127.0.0.1:1"], ["node", "prepare", "--hosts", "192.0.2.20"],
                  ["add-node", "--workers", "192.0.2.21"]):
        refuses(site, capsys, words, "files/registry", check=True)


# -- the host lock: held by a running operation, stale, unreadable --------------------------------------------------
def _lock(site, pid, host=None):
    p = lock.lock_path(site.root)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as f:
        json.dump({"operation": "upgrade", "id": "abc123", "host": host or socket.gethostname(), "pid": pid,
                   "started": "2026-12-01T06:00:00Z"}, f)
    return p


LOCKING = [["upgrade", "-y"], ["node", "prepare", "--hosts", "192.0.2.20"], ["add-node", "--workers", "192.0.2.21"],
           ["remove-node", "w1", "-y"], ["backup"], ["certs", "renew", "-y"]]


@pytest.fixture
def local_site(site, monkeypatch):
    """The record's first control plane is this host (127.0.0.1), so the commands get to their lock; the real
    Runner with connect() replaced by a stop (the lock is taken before any connection)."""
    monkeypatch.setattr("installer.runner.Runner", RunnerWithoutConnect)
    monkeypatch.setattr("installer.cli.Runner", RunnerWithoutConnect)
    site.record = good_record(site.bundle, host="127.0.0.1")
    site.record["inventory"]["hosts"][1].update(address="127.0.0.2", port=1)  # remove-node's probe: refused at once
    site.write_record(site.record)
    return site


def _no_connect(self):
    raise Reached("REACHED connect")


RunnerWithoutConnect = type("RunnerWithoutConnect", (_runner_mod.Runner,), {"connect": _no_connect})


@pytest.mark.parametrize("words", LOCKING, ids=[w[0] for w in LOCKING])
def test_a_held_lock_refuses_and_changes_nothing(local_site, capsys, words):
    p = _lock(local_site, os.getpid())
    err = refuses(local_site, capsys, words, "another operation holds the lock", p)
    assert "Wait until it ends" in err
    rc, out, err = call(local_site.argv(["upgrade", "--abort"]), capsys)
    assert_refused(rc, out, err, "still running")
    assert os.path.exists(p)


@pytest.mark.parametrize("words", LOCKING, ids=[w[0] for w in LOCKING])
def test_a_stale_lock_is_named_and_abort_releases_it(local_site, capsys, words):
    p = _lock(local_site, DEAD_PID)
    refuses(local_site, capsys, words, "stale lock", "--abort")
    rc, out, err = call(local_site.argv(words + ["--abort"]), capsys)
    assert rc == 0 and "released the stale lock" in out and not os.path.exists(p), (out, err)
    rc, out, err = call(local_site.argv(words), capsys)
    assert "lock" not in err and "Traceback" not in err  # past the lock now (on to connect or preflight)


@pytest.mark.parametrize("content", ["", "{", "[]", "\xff\xfe", '{"pid": "x"}'])
def test_an_unreadable_lock_is_stale_and_abort_releases_it(local_site, capsys, content):
    p = lock.lock_path(local_site.root)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w", encoding="latin-1") as f:
        f.write(content)
    refuses(local_site, capsys, ["upgrade", "-y"], "lock")
    rc, out, err = call(local_site.argv(["upgrade", "--abort"]), capsys)
    assert rc == 0 and not os.path.exists(p), (out, err)


def test_a_lock_that_is_a_directory(local_site, capsys):
    p = lock.lock_path(local_site.root)
    os.makedirs(p)
    refuses(local_site, capsys, ["upgrade", "-y"], p)
    before = snapshot(local_site.root)
    rc, out, err = call(local_site.argv(["upgrade", "--abort"]), capsys)
    assert_refused(rc, out, err, p)
    assert changes(before, snapshot(local_site.root)) == []


def test_abort_with_a_damaged_record_history(local_site, capsys):
    for history in (7, "text", [None], [7], {"result": "in progress"}):
        r = dict(local_site.record, history=history)
        local_site.write_record(r)
        rc, out, err = call(local_site.argv(["upgrade", "--abort"]), capsys)
        assert rc == 0 and "Traceback" not in err, (history, out, err)


# -- FIFOs: never block (a subprocess with a timeout, so a hang fails instead of stalling the suite) --------------
def _run_cli(argv, timeout=20):
    env = dict(os.environ, PYTHONPATH=REPO)
    try:
        p = subprocess.run([sys.executable, "-m", "installer"] + argv, capture_output=True,
                           stdin=subprocess.DEVNULL, text=True, timeout=timeout, env=env, cwd=REPO)
    except subprocess.TimeoutExpired:
        pytest.fail("hangs: %s" % " ".join(argv))
    return p.returncode, p.stdout, p.stderr


def test_fifos_in_place_of_files_never_block(site):
    fifo = str(site.tmp / "fifo")
    os.mkfifo(fifo)
    cases = [
        (["node", "apply", "--join", fifo], "join file"),
        (["node", "finish", "--join", fifo], "join file"),
        (["push-images", "--to", "127.0.0.1:1", "--credentials", fifo], "--credentials"),
        (["push-images", "--to", "127.0.0.1:1", "--ca", fifo], "--ca"),
    ]
    site.write_record(good_record(site.bundle))
    for words, expect in cases:
        rc, out, err = _run_cli(site.argv(words))
        assert_refused(rc, out, err, expect, fifo)
    # the cluster record and the lock as FIFOs
    rpath = rec.serve_record_path(site.root)
    os.unlink(rpath)
    os.mkfifo(rpath)
    for words in (["upgrade", "-y"], ["doctor"], ["export-state"], ["add-node", "--workers", "192.0.2.21"]):
        rc, out, err = _run_cli(site.argv(words))
        assert_refused(rc, out, err, rpath)
    os.unlink(rpath)
    site.write_record(good_record(site.bundle, host="127.0.0.1"))
    lpath = lock.lock_path(site.root)
    os.mkfifo(lpath)
    rc, out, err = _run_cli(site.argv(["upgrade", "--abort"]))
    assert "Traceback" not in err and rc in (0, 1), err


def test_export_state_into_a_fifo_without_a_reader_does_not_block(site):
    os.makedirs(os.path.join(site.root, "opt", "airgap"))
    site.write_record(good_record(site.bundle))
    fifo = str(site.tmp / "out.fifo")
    os.mkfifo(fifo)
    rc, out, err = _run_cli(site.argv(["export-state", "-o", fifo]))
    assert_refused(rc, out, err, fifo)
    assert not os.path.isfile(fifo), "the FIFO was replaced by a regular file"


def test_export_state_into_a_fifo_with_a_reader(site):
    os.makedirs(os.path.join(site.root, "opt", "airgap"))
    site.write_record(good_record(site.bundle))
    fifo = str(site.tmp / "out.fifo")
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", fifo], stdout=subprocess.PIPE)
    try:
        rc, out, err = _run_cli(site.argv(["export-state", "-o", fifo]))
        got = reader.communicate(timeout=20)[0]
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()
    assert rc == 0, err
    assert json.loads(got.decode())["stateVersion"] == 1 and not os.path.isfile(fifo)


# -- hostile join files (node apply / finish) ---------------------------------------------------------------------
def _mutations_of_join(b):
    d = join_doc(b)
    out = {}
    for key in sorted(d):
        for name, value in (("none", None), ("int", 7), ("str", "x"), ("list", [1]), ("dict", {"a": 1}),
                            ("huge", 10 ** 30), ("nested", [[[[]]]])):
            m = dict(d)
            m[key] = value
            out["%s=%s" % (key, name)] = m
    for name, hosts in (("host-address-int", [{"address": 5}]), ("host-role-list", [{"address": "192.0.2.13",
                                                                                      "role": ["w"]}]),
                        ("host-port-word", [{"address": "192.0.2.13", "port": "ssh"}]),
                        ("host-traversal", [{"address": "../../etc/passwd"}]), ("no-hosts", [])):
        out[name] = dict(d, hosts=hosts)
    out["record-hosts-int"] = dict(d, record=dict(d["record"], inventory={"hosts": 5}))
    out["bundle-images-int"] = dict(d, bundle=dict(d["bundle"], images=5))
    out["bundle-image-without-ref"] = dict(d, bundle=dict(d["bundle"], images=[{"digest": "sha256:" + "a" * 64}]))
    out["bundle-schema-2"] = dict(d, bundle=dict(d["bundle"], schemaVersion=2))
    out["record-options-str"] = dict(d, record=dict(d["record"], options="x"))
    out["expired"] = dict(d, expires=joinfile.iso(NOW - 60))
    return out


def test_hostile_join_files_are_one_error(site, capsys):
    """Every field of the join file with a wrong type: node apply and node finish refuse it in one paragraph
    (--address names a host of the file, so node apply gets as far as the file lets it)."""
    site.write_record(good_record(site.bundle))
    bad = []
    for name, doc in sorted(_mutations_of_join(site.bundle).items()):
        path = site.join_file(doc)
        for words in (["node", "apply", "--join", path, "--address", "192.0.2.13"],
                      ["plan", "node", "finish", "--join", path]):
            before = snapshot(site.root, site.bundle.root)
            rc, out, err = call(site.argv(words), capsys)
            if rc != 1 or "Traceback" in err or err.count("error:") != 1:
                bad.append((name, words[1], rc, err.strip()[-200:]))
            elif "REACHED" not in err:
                assert changes(before, snapshot(site.root, site.bundle.root)) == []
    assert bad == []


# -- hostile credentials and CA files (push-images) ------------------------------------------------------------------
CREDENTIALS = {
    "empty": b"", "blank-lines": b"\n\n\n", "binary": bytes(range(256)) * 4, "no-colon": b"user\n",
    "two-lines": b"a:b\nc:d\n", "colon-first": b":secret\n", "config-no-auths": b'{"credsStore": "desktop"}',
    "config-auths-list": b'{"auths": []}', "config-auths-str": b'{"auths": "x"}',
    "config-entry-str": b'{"auths": {"127.0.0.1:1": "x"}}', "config-entry-list": b'{"auths": {"127.0.0.1:1": [1]}}',
    "config-auth-not-base64": b'{"auths": {"127.0.0.1:1": {"auth": "!!!"}}}',
    "config-auth-int": b'{"auths": {"127.0.0.1:1": {"auth": 5}}}',
    "config-user-int": b'{"auths": {"127.0.0.1:1": {"username": 5, "password": 6}}}',
    "config-truncated": b'{"auths": {"127.0.0.1:1": {"auth": "dXNlcjpwYXNz"',
    "config-a-list": b'[{"auths": {}}]', "config-nested": b"{" + b'"a":[' * 50000 + b"]" * 50000 + b"}",
    "utf16": "user:pass".encode("utf-16"),
}
SECRET = b"s3cr3t-never-printed"


@pytest.mark.parametrize("name", sorted(CREDENTIALS))
def test_hostile_credentials_files(site, capsys, name):
    """push-images --credentials: a clear refusal (or, for an accepted file, on to the registry, which refuses:
    nothing listens on 127.0.0.1:1); never a traceback, never the file's content."""
    p = site.tmp / "creds"
    p.write_bytes(CREDENTIALS[name].replace(b"pass", SECRET))
    rc, out, err = call(site.argv(["plan", "push-images", "--to", "127.0.0.1:1", "--credentials", str(p)]), capsys)
    assert rc == 1 and "Traceback" not in err and err.count("error:") == 1, err
    assert SECRET.decode() not in out + err


# -- doctor: kubectl answers with missing fields, wrong types, non-UTF-8 journals --------------------------------------
def _doctor_env(bundle, mutate):
    from . import test_doctor as T
    env, conns = T.fake_env(bundle)
    answers = conns["10.0.0.11"].answers

    def hostile(label, cmd):
        res = answers(label, cmd)
        return mutate(cmd, res)
    for c in conns.values():
        c.answers = hostile
    return env, T


# what kubectl (exit 0) can print: objects with fields missing or null, an empty list, a warning or a proxy's page
# instead of JSON, replacement characters; the etcdctl answers (-w json) in odd shapes
KUBE_ANSWERS = ["{}", '{"items": []}', '{"items": [{}]}', '{"items": [{"metadata": {}, "spec": {}, "status": {}}]}',
                '{"items": [{"metadata": null, "spec": null, "status": null}]}', '{"items": null}',
                '{"items": [{"status": {"conditions": []}}]}', '{"subsets": []}', '{"subsets": [{}]}',
                '{"spec": {}}', '{"data": null}', '{"data": {}}', "", "not json", "Warning: v1 Endpoints is deprecated",
                "<html>502 Bad Gateway</html>", "\ufffd\ufffd", '{"gitVersion": null}', "[]", "[{}]", "null",
                '[{"endpoint": 5, "health": "yes"}]']


@pytest.mark.parametrize("answer", KUBE_ANSWERS)
def test_doctor_survives_hostile_kubectl_answers(bundle, answer):
    from installer.ssh import Result

    def mutate(cmd, res):
        if cmd.startswith("kubectl") and "get --raw '/readyz" not in cmd:
            return Result(cmd, 0, answer, "")
        return res
    env, T = _doctor_env(bundle, mutate)
    report = T.run_all(env)
    assert report.to_json() and report.render()


@pytest.mark.parametrize("journal", [b"\xff\xfe\x00kubelet \x80\x81 failed", b"\x00" * 4096,
                                     "Cert \udcff expired".encode("utf-8", "surrogateescape"), b"\n" * 10000])
def test_doctor_survives_non_utf8_journals(bundle, journal):
    from installer.ssh import Result
    text = journal.decode("utf-8", "replace")  # what the connections hand over (installer.ssh decodes so)
    raw = journal.decode("latin-1")  # and what a connection that did not decode would

    def mutate(cmd, res):
        if cmd.startswith("export LC_ALL=C"):
            out = res.stdout.split("==> journal\n", 1)
            tail = out[1].split("==> cni", 1)[1]
            return Result(cmd, 0, out[0] + "==> journal\n" + text + raw + "\n==> cni" + tail, "")
        return res
    env, T = _doctor_env(bundle, mutate)
    report = T.run_all(env)
    assert report.to_json() and report.render()


# -- a seeded fuzzer over the JSON these commands read -------------------------------------------------------------
SEED = 20261201
FUZZ_CASES = 2000
FUZZ_SECONDS = 10.0
HANG_SECONDS = 2.0
ODD = [None, True, 0, -1, 2 ** 63, 10 ** 400, 1e308, float("inf"), "", "x" * 10000, "../../../etc/shadow", "\x00",
       "\udcff", [], [None], {}, {"": None}, [[[[[]]]]], "sha256:" + "0" * 64]


def mutate(rng, doc, depth=0):
    """One random change deep in a JSON document (tests/jsonfuzz.py)."""
    return jsonfuzz.mutate(rng, doc, ODD, 3, depth)


def _text(rng, doc):
    text = json.dumps(doc, allow_nan=True) if not isinstance(doc, str) else doc
    r = rng.random()
    if r < 0.1:
        return text[:rng.randint(0, len(text))]  # truncated
    if r < 0.15:
        return text.encode("utf-8", "surrogateescape").decode("latin-1")
    return text


def _fixed(doc):
    """The seed document without this run's temporary paths, so that a seed gives the same cases every run."""
    rec_ = doc.get("record", doc)
    rec_["bundle"] = dict(rec_["bundle"], dir="/srv/airgap/bundle")
    return doc


FUZZ_TARGETS = {
    "record/upgrade": (lambda s: _fixed(good_record(s.bundle)), lambda s, t: (s.write_record(t), ["upgrade", "-y"])[1]),
    "record/node-prepare": (lambda s: _fixed(good_record(s.bundle)),
                            lambda s, t: (s.write_record(t), ["node", "prepare", "--hosts", "192.0.2.20"])[1]),
    "record/add-node": (lambda s: _fixed(good_record(s.bundle)),
                        lambda s, t: (s.write_record(t), ["add-node", "--workers", "192.0.2.21"])[1]),
    "record/doctor": (lambda s: _fixed(good_record(s.bundle)), lambda s, t: (s.write_record(t), ["doctor"])[1]),
    "record/remove-node": (lambda s: _fixed(good_record(s.bundle)),
                           lambda s, t: (s.write_record(t), ["remove-node", "w1", "-y"])[1]),
    "record/backup": (lambda s: _fixed(good_record(s.bundle)), lambda s, t: (s.write_record(t), ["backup"])[1]),
    "record/certs": (lambda s: _fixed(good_record(s.bundle)),
                     lambda s, t: (s.write_record(t), ["certs", "renew", "-y"])[1]),
    "join/apply": (lambda s: _fixed(join_doc(s.bundle)), lambda s, t: [
        "node", "apply", "--address", "192.0.2.13", "--join", _write(s, "join.json", t)]),
    "join/finish": (lambda s: _fixed(join_doc(s.bundle)), lambda s, t: [
        "plan", "node", "finish", "--join", _write(s, "join.json", t)]),
    "credentials/push": (lambda s: {"auths": {"127.0.0.1:1": {"auth": "dXNlcjpwYXNz", "username": "u"}}},
                         lambda s, t: ["plan", "push-images", "--to", "127.0.0.1:1", "--credentials",
                                       _write(s, "creds.json", t)]),
}


def _write(site, name, text):
    p = str(site.tmp / name)
    with open(p, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(text)
    return p


def test_fuzz_the_json_inputs(site, capsys):
    """Seeded (SEED), bounded in count (FUZZ_CASES) and time (FUZZ_SECONDS). Prints cases / clean (a refusal or
    the Runner double reached) / tracebacks / hangs, like the manifest fuzzer; asserts no traceback and no hang."""
    rng = random.Random(SEED)
    names = sorted(FUZZ_TARGETS)
    counts = {"cases": 0, "clean": 0, "reached": 0, "tracebacks": 0, "hangs": 0}
    failures = []
    start = time.time()
    site.write_record(good_record(site.bundle))
    while counts["cases"] < FUZZ_CASES and time.time() - start < FUZZ_SECONDS:
        name = rng.choice(names)
        seed_doc, argv_of = FUZZ_TARGETS[name]
        text = _text(rng, mutate(rng, seed_doc(site)))
        if not name.startswith("record/"):
            site.write_record(good_record(site.bundle))
        argv = site.argv(argv_of(site, text))
        counts["cases"] += 1
        t0 = time.time()
        try:
            rc = cli.main(argv)
        except SystemExit as e:
            rc = e.code
        except Exception:  # noqa: BLE001
            counts["tracebacks"] += 1
            failures.append((name, text[:300], traceback.format_exc().splitlines()[-1]))
            capsys.readouterr()
            continue
        err = capsys.readouterr().err
        if time.time() - t0 > HANG_SECONDS:
            counts["hangs"] += 1
            failures.append((name, text[:300], "took %.1f s" % (time.time() - t0)))
        elif "REACHED" in err:
            counts["reached"] += 1
        elif rc in (1, 2) and err.count("error:") == 1:
            counts["clean"] += 1
        elif rc == 0:
            counts["clean"] += 1  # accepted (e.g. a credentials file that still names a user)
        else:
            failures.append((name, text[:300], "rc %r, stderr %r" % (rc, err[-300:])))
    with capsys.disabled():
        sys.stdout.write("\ninstaller JSON fuzz (seed %d): %d cases, %d clean refusals, %d reached the runner, "
                         "%d tracebacks, %d hangs, %.1f s\n" % (SEED, counts["cases"], counts["clean"],
                                                                 counts["reached"], counts["tracebacks"],
                                                                 counts["hangs"], time.time() - start))
    assert counts["cases"] >= 50
    assert failures == [], "\n".join("%s: %r -> %s" % f for f in failures[:10])
    shutil.rmtree(str(site.tmp / "root"), ignore_errors=True)


# -- complete-delta: hostile delta sections in bundle.json -------------------------------------------------------
DELTA_SECTIONS = {
    "delta-a-string": "x", "omitted-a-list": {"omitted": [1]}, "packages-a-number": {"omitted": {"packages": 5}},
    "entry-a-string": {"omitted": {"packages": ["repo/Packages/a.rpm"]}},
    "entry-without-sha": {"omitted": {"packages": [{"path": "repo/Packages/a.rpm"}]}},
    "sha-null": {"omitted": {"packages": [{"path": "repo/Packages/a.rpm", "sha256": None}]}},
    "sha-a-number": {"omitted": {"blobs": [{"path": "images/blobs/sha256/" + "a" * 64, "sha256": 10 ** 80}]}},
    "traversal": {"omitted": {"files": [{"path": "files/../../../etc/passwd", "sha256": "a" * 64}]}},
    "absolute": {"omitted": {"files": [{"path": "/etc/shadow", "sha256": "a" * 64}]}},
    "not-omittable": {"omitted": {"files": [{"path": "install.py", "sha256": "a" * 64}]}},
    "path-a-list": {"omitted": {"packages": [{"path": ["repo"], "sha256": "a" * 64}]}},
    "duplicates": {"omitted": {"packages": [{"path": "repo/Packages/a.rpm", "sha256": "a" * 64}] * 3}},
}


@pytest.mark.parametrize("name", sorted(DELTA_SECTIONS))
def test_complete_delta_with_a_hostile_delta_section(site, capsys, name):
    """A delta section of the wrong shape, pointing outside the bundle or at what the site lacks: one error (exit 1
    or 2), nothing copied in, nothing written under --root."""
    with open(os.path.join(site.bundle.root, "bundle.json")) as f:
        data = json.load(f)
    data["delta"] = DELTA_SECTIONS[name]
    with open(os.path.join(site.bundle.root, "bundle.json"), "w") as f:
        json.dump(data, f)
    write_sums(site.bundle.root)
    for words in (["complete-delta"], ["plan", "complete-delta"], ["upgrade", "-y"]):
        before = snapshot(site.root, site.bundle.root)
        rc, out, err = call(site.argv(words, check=True), capsys)
        if rc == 0 and "not a delta" in out:
            continue  # a section without omitted items is a whole bundle
        assert_refused(rc, out, err, code=(2 if "DeltaIncomplete" in err or "missing" in err else 1))
        assert changes(before, snapshot(site.root, site.bundle.root)) == []


# -- doctor --collect: where the support bundle goes ---------------------------------------------------------------
def test_doctor_collect_to_a_path_that_cannot_take_it_is_refused_before_any_host(site, capsys):
    """--collect into a directory, a missing directory, a FIFO: refused before the record is read or a host is
    contacted (the whole diagnosis is not wasted), nothing written."""
    site.write_record(good_record(site.bundle))
    f = _fixtures(site)
    fifo = str(site.tmp / "collect.fifo")
    os.mkfifo(fifo)
    for p in (f["dir"], f["missing"], f["under-a-file"], fifo):
        refuses(site, capsys, ["doctor", "--collect", p], "--collect", p)
    assert not [n for n in os.listdir(str(site.tmp)) if ".tmp-" in n]


def test_bundle_json_of_an_images_only_bundle_still_loads(tmp_path):
    """kubernetes: null is what bundler writes for packages-only and images-only bundles (push-images uses them):
    the shape check refuses a wrong type, not that."""
    from installer.bundle import Bundle
    (tmp_path / "bundle.json").write_text(json.dumps({"schemaVersion": 1, "target": {"os": "el9", "arch": "x86_64"},
                                                      "kubernetes": None, "images": []}))
    assert Bundle.load(str(tmp_path)).data["kubernetes"] is None


INDEXES = ["[1]", '{"manifests": 5}', '{"manifests": [5]}', '{"manifests": [{"digest": 5}]}',
           '{"manifests": [{"digest": "sha256:%s", "annotations": "x"}]}' % ("a" * 64), "garbage",
           "[" * 100000 + "]" * 100000]


@pytest.mark.parametrize("index", INDEXES, ids=range(len(INDEXES)))
def test_push_images_with_a_hostile_image_index(site, capsys, index):
    with open(os.path.join(site.bundle.root, "images", "index.json"), "w") as f:
        f.write(index)
    refuses(site, capsys, ["plan", "push-images", "--to", "127.0.0.1:1"], "index.json")


# -- upgrade: the bundle's kubernetes section and image list, hostile ---------------------------------------------
UPGRADE_BUNDLES = [
    {"kubernetes": {"version": "x"}}, {"kubernetes": {"version": None}}, {"kubernetes": {"version": 1.31}},
    {"kubernetes": {"version": "1.31.0", "hops": 5}}, {"kubernetes": {"version": "1.31.0", "hops": [5]}},
    {"kubernetes": {"version": "1.31.0", "hops": [{"version": None}]}},
    {"kubernetes": {"version": "1.31.0", "hops": [{"version": "1.30.1", "images": 5}]}},
    {"kubernetes": {"version": "1." + "9" * 5000 + ".0"}}, {"kubernetes": None}, {},
    {"kubernetes": {"version": "1.31.0"}, "images": 5}, {"kubernetes": {"version": "1.31.0"}, "images": [5]},
    {"kubernetes": {"version": "1.31.0"}, "images": [{"ref": 5}]},
]


@pytest.mark.parametrize("data", UPGRADE_BUNDLES, ids=range(len(UPGRADE_BUNDLES)))
def test_upgrade_path_of_a_hostile_bundle(data):
    """installer.upgrade.path over a damaged kubernetes section: the steps or one clear error, never a traceback
    (the preflight computes them before any change)."""
    from installer.upgrade import path as P
    for current in ((1, 30, 4), (1, 31, 0)):
        try:
            for step in P.steps(current, data):
                assert isinstance(P.hop_images(data, step), list)
        except InstallerError as e:
            assert "bundle.json" in str(e) or "Nothing was changed" in str(e)


@pytest.mark.parametrize("section", ["packages", "images", "files"])
def test_bundle_lists_of_the_wrong_shape_are_refused_on_load(site, capsys, section):
    for value in (5, "x", [5], [None]):
        with open(os.path.join(site.bundle.root, "bundle.json")) as f:
            data = json.load(f)
        data[section] = value
        with open(os.path.join(site.bundle.root, "bundle.json"), "w") as f:
            json.dump(data, f)
        site.write_record(good_record(site.bundle))
        refuses(site, capsys, ["plan", "upgrade"], "bundle.json", section)


def test_a_lock_from_another_host_name_says_how_to_get_out(local_site, capsys):
    """A lock taken under another host name (the serving host was renamed, or /etc copied from another one): its
    PID says nothing here, so --abort refuses, and says to remove it by hand if nothing runs there."""
    p = _lock(local_site, DEAD_PID, host="old-name.example")
    refuses(local_site, capsys, ["upgrade", "-y"], "another operation holds the lock", p)
    before = snapshot(local_site.root)
    rc, out, err = call(local_site.argv(["upgrade", "--abort"]), capsys)
    assert_refused(rc, out, err, "another host name", "remove %s by hand" % p)
    assert changes(before, snapshot(local_site.root)) == []


def test_complete_delta_while_another_completion_runs(tmp_path, capsys):
    """Two commands completing one delta bundle at once removed and renamed each other's temporary files (a
    partial file could land in place), and the bundle check's clean-up removed a running completion's temporary
    files: the second completion now refuses in one paragraph and changes nothing, and the clean-up leaves the
    files of a completion that holds the bundle directory's flock."""
    import fcntl

    from installer import delta

    from . import test_delta_site as D
    top, omitted = D._delta(tmp_path)
    root = D._site(tmp_path, omitted)
    fd = os.open(str(top), os.O_RDONLY)  # the other completion: holds the bundle directory's flock
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        before = D._tree(top)
        rc, out, err = call(["complete-delta", "--root", str(root), "--bundle", str(top)], capsys)
        assert_refused(rc, out, err, "another command is completing the delta bundle", str(top))
        assert D._tree(top) == before
        inflight = D._put(top / "images/blobs/sha256" / ".y.airgap-delta-tmp", b"being written by the other")
        delta.clean_partial(str(top))
        assert inflight.exists()
    finally:
        os.close(fd)
    delta.clean_partial(str(top))  # nobody completes now: a leftover of a killed run
    assert not inflight.exists()
    rc, out, err = call(["complete-delta", "--root", str(root), "--bundle", str(top)], capsys)
    assert rc == 0 and "3 item(s) copied in" in out, (out, err)


def test_a_fifo_inside_the_bundle_is_refused_by_the_check_without_blocking(site):
    os.unlink(os.path.join(site.bundle.root, "files", "registry"))
    os.mkfifo(os.path.join(site.bundle.root, "files", "registry"))
    site.write_record(good_record(site.bundle))
    for words in (["complete-delta"], ["upgrade", "-y"], ["push-images", "--to", "127.0.0.1:1"]):
        rc, out, err = _run_cli(site.argv(words, check=True))
        assert_refused(rc, out, err, "files/registry", "not a regular file")


# -- restore: hostile backups (the archive, its .sha256, meta.json, pki.tar.gz) ------------------------------------
def _backup(tmp_path, meta=None, members=None):
    from installer import backup_archive as archive
    path = str(tmp_path / "bk" / "airgap-backup-k8s-20260101T000000Z.tar.gz")
    meta = {"format": 1, "members": [{"name": "cp1", "peerURLs": ["https://192.0.2.11:2380"]}],
            "caFingerprint": None, "created": "2026-01-01T00:00:00Z"} if meta is None else meta
    content = {"meta.json": meta if isinstance(meta, bytes) else json.dumps(meta).encode(),
               "etcd/snapshot.db": b"SNAP\n"}
    content.update(members or {})
    archive.write(path, content)
    return path


HOSTILE_META = [b"[1]", b"{", b"[" * 100000 + b"]" * 100000, b"\xff\xfe", {"format": 1, "members": 5},
                {"format": 1, "members": [5]}, {"format": 1, "members": [{"name": 5}]},
                {"format": 1, "members": [{"name": "cp1", "peerURLs": "https://x"}]},
                {"format": 1, "members": [{"name": "cp1", "peerURLs": [5]}]}, {"format": 1, "takenOn": "cp1"},
                {"format": 2}, {"format": "1"}]


@pytest.mark.parametrize("meta", HOSTILE_META, ids=range(len(HOSTILE_META)))
def test_restore_a_backup_with_a_hostile_meta_json(site, capsys, meta):
    site.write_record(good_record(site.bundle))
    path = _backup(site.tmp, meta)
    for words in (["restore", path, "-y"], ["plan", "restore", path]):
        refuses(site, capsys, words, "meta.json" if not isinstance(meta, dict) or meta.get("format") == 1
                else "format", path)


def test_restore_archive_and_checksum_in_odd_places(site, capsys):
    site.write_record(good_record(site.bundle))
    path = _backup(site.tmp)
    sums = path + ".sha256"
    with open(sums, "wb") as f:
        f.write(b"\xff\xfe\x00binary")
    refuses(site, capsys, ["restore", path, "-y"], "does not match its checksum")
    os.unlink(sums)
    os.mkdir(sums)
    refuses(site, capsys, ["restore", path, "-y"], "has no checksum file")
    os.rmdir(sums)
    refuses(site, capsys, ["restore", str(site.tmp), "-y"], "does not exist")  # a directory
    refuses(site, capsys, ["restore", "-y"], "needs the backup archive")


def test_restore_checksum_file_that_is_a_fifo_never_blocks(site):
    site.write_record(good_record(site.bundle))
    path = _backup(site.tmp)
    os.unlink(path + ".sha256")
    os.mkfifo(path + ".sha256")
    rc, out, err = _run_cli(site.argv(["restore", path, "-y"]))
    assert_refused(rc, out, err, "has no checksum file")


def _pki(entries):
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, kind in entries:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "link":
                info.type, info.linkname = tarfile.SYMTYPE, "/etc"
                tar.addfile(info)
            else:
                info.size = 4
                tar.addfile(info, io.BytesIO(b"cert"))
    return buf.getvalue()


@pytest.mark.parametrize("entries", [
    [("pki", "dir"), ("pki/../manifests/kube-apiserver.yaml", "file")],
    [("manifests/kube-apiserver.yaml", "file")], [("pki", "dir"), ("pki/etc", "link")],
    [("/etc/shadow", "file")], [("pki-other/x", "file")],
], ids=["dotdot", "outside", "symlink", "absolute", "prefix-lookalike"])
def test_restore_new_cluster_refuses_a_pki_archive_reaching_outside_pki(entries, tmp_path):
    """restore --new-cluster unpacks pki.tar.gz into /etc/kubernetes on every control plane: a member outside pki/,
    a link or a '..' is refused before any host is touched (the archive only has to match its own .sha256)."""
    from installer import backup_archive as archive
    with pytest.raises(InstallerError) as e:
        archive.check_pki(_pki(entries), "B")
    assert "pki.tar.gz holds" in str(e.value) and "nothing was changed" in str(e.value)
    archive.check_pki(_pki([("pki", "dir"), ("pki/ca.crt", "file"), ("pki/etcd", "dir"),
                            ("pki/etcd/ca.key", "file")]), "B")
    with pytest.raises(InstallerError):
        archive.check_pki(b"not gzip", "B")


# -- the text parsers behind certs and doctor, over garbled tool output (seeded) -----------------------------------
def _garble(rng, text):
    t = list(text)
    for _ in range(rng.randint(1, 20)):
        i = rng.randrange(len(t) + 1)
        r = rng.random()
        if r < 0.4 and t:
            del t[min(i, len(t) - 1)]
        elif r < 0.8:
            t.insert(i, rng.choice(list(" \n\t:|-0123456789ZAPRJanDec\ufffd\x00")))
        else:
            t[i:i + rng.randint(1, 50)] = []
    return "".join(t)


def test_fuzz_the_certificate_and_disk_parsers():
    """kubeadm certs check-expiration, openssl -enddate and df output with characters dropped, inserted and cut
    (seed SEED, 800 cases each): rows or findings, or nothing, never an exception."""
    from installer import certs
    from installer.doctor import cluster, nodes
    fix = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
    with open(os.path.join(fix, "certs", "kubeadm-1.30-check-expiration.txt")) as f:
        kubeadm = f.read()
    enddate = "/etc/kubernetes/pki/apiserver.crt notAfter=Dec 11 05:30:00 2035 GMT\n1764567000\n"
    parsers = [(certs.parse_check_expiration, kubeadm), (lambda t: certs.parse_enddate(t), enddate),
               (lambda t: cluster.classify_check_expiration(t, 1764567000, "h"), kubeadm),
               (lambda t: cluster.classify_cert_dates(t, "h"), enddate),
               (lambda t: nodes.classify_disk(t, "h"), "/dev/sda1 100 50 50 95% /var\n")]
    rng = random.Random(SEED)
    failures = []
    for fn, seed in parsers:
        for _ in range(800):
            text = _garble(rng, seed)
            try:
                fn(text)
            except Exception as e:  # noqa: BLE001
                failures.append((text[:120], "%s: %s" % (type(e).__name__, e)))
    assert failures == [], failures[:5]


def test_a_join_file_with_a_damaged_bundle_json_is_refused_before_the_host_is_touched(site, capsys):
    """node apply builds its bundle from the join file's copy of bundle.json: checked like the file itself."""
    d = join_doc(site.bundle)
    for bad in (dict(d["bundle"], images=5), dict(d["bundle"], images=[{"digest": "x"}]),
                dict(d["bundle"], schemaVersion=2), dict(d["bundle"], target="el9")):
        path = site.join_file(dict(d, bundle=bad))
        refuses(site, capsys, ["node", "apply", "--join", path, "--address", "192.0.2.13"], path, "bundle.json")
