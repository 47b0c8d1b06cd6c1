"""What an operator sees of a build: stages, the summary, the tarball's .sha256, --sign checked first, plan."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bundler.build import STEP_ORDER, build, lock
from bundler.errors import BundlerError
from bundler.fetch.cache import Cache
from bundler.manifest import load_manifest
from bundler.progress import Stages

K8S = ["kubeadm-1.30.4", "kubelet-1.30.4", "kubectl-1.30.4", "containerd.io"]
TOP = "stack-1.0-el9-x86_64"


def _manifest(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "stack.yaml"
    p.write_text(text)
    return p


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bundler.cli", *args], capture_output=True, text=True, timeout=300,
                          env=env)


def test_locked_and_unlocked_builds_of_the_same_inputs_are_byte_identical(tmp_path, stack):
    m = load_manifest(_manifest(tmp_path, stack.manifest(packages=K8S, cni="calico")))
    cache = Cache(tmp_path / "cache")
    lock(m, cache)
    locked = build(m, tmp_path / "a", cache, quiet=True, locked=True)
    unlocked = build(m, tmp_path / "b", cache, quiet=True)
    assert locked.sha256 == unlocked.sha256 == hashlib.sha256(locked.path.read_bytes()).hexdigest()
    bom = json.loads(subprocess.run(["tar", "-xzOf", str(locked.path), f"{TOP}/bundle.json"], capture_output=True,
                                    check=True).stdout)
    assert bom["kubernetes"]["imagesFrom"] == "the shipped kubeadm"  # where the list came from, not "the lock"
    assert {f["name"]: f["pinnedBy"] for f in bom["files"]}["helm"] == "publisher"
    # NAME.tar.gz.sha256 beside the tarball, in the format sha256sum -c reads
    assert locked.sha256_path == tmp_path / "a" / f"{TOP}.tar.gz.sha256"
    assert locked.sha256_path.read_text() == f"{locked.sha256}  {TOP}.tar.gz\n"
    r = subprocess.run(["sha256sum", "-c", locked.sha256_path.name], cwd=locked.path.parent, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [f"{TOP}.tar.gz", f"{TOP}.tar.gz.sha256"]


def test_cli_build_shows_stages_a_fixed_summary_and_the_sha256(tmp_path, stack):
    path = _manifest(tmp_path, stack.manifest(packages=K8S, cni="none", extra_images=["registry.k8s.io/pause:3.9"]))
    args = ["build", str(path), "--cache", str(tmp_path / "cache"), "-o", str(tmp_path / "out")]
    r = _cli(*args)
    assert r.returncode == 0, r.stderr
    # the resolve stage and the file downloads are named while they run (stderr), each with its time
    assert "resolve: reading the metadata of" in r.stderr and "files: " in r.stderr
    assert "resolve: asking the shipped kubeadm" in r.stderr and " done in " in r.stderr
    out = r.stdout.splitlines()
    tarball = tmp_path / "out" / f"{TOP}.tar.gz"
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    assert f"sha256 {digest}" in r.stdout and f"{TOP}.tar.gz.sha256" in r.stdout
    head = next(i for i, line in enumerate(out) if line.split()[:2] == ["step", "what"])
    rows = out[head + 1:head + 1 + len(STEP_ORDER)]
    assert [row.split()[0] for row in rows] == list(STEP_ORDER)
    # aligned: every column ends at the same place in every row (right-aligned numbers)
    assert len({len(row) for row in [out[head], *rows]}) == 1
    assert "RPMs" in rows[2] and "images" in rows[3] and "files" in rows[1]

    r = _cli(*args, "--json")
    summary = json.loads(r.stdout)
    assert list(summary["steps"]) == list(STEP_ORDER)
    assert summary["sha256"] == hashlib.sha256(tarball.read_bytes()).hexdigest()
    steps = summary["steps"]
    # one unit per row for objects and cache hits; this second build is warm, so every object was a cache hit
    for name in ("files", "packages", "images"):
        assert steps[name]["objects"] == steps[name]["cache_hits"] > 0, name
    assert steps["packages"]["objects"] == steps["packages"]["count"]  # one object per RPM
    assert steps["images"]["unit"] == "images" and steps["images"]["count"] == 7  # Kubernetes 1.30.4 + pause


def test_sign_key_is_checked_before_any_download_and_creates_no_gnupg_home(tmp_path, stack, gpg_keys):
    signer, _ = gpg_keys
    m = load_manifest(_manifest(tmp_path, stack.manifest(packages=K8S, cni="none", k8s=None)))
    before = len(stack.yum.log)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "GNUPGHOME"}
    env["HOME"] = str(home)
    r = _cli("build", str(m.file), "--cache", str(tmp_path / "cache"), "-o", str(tmp_path / "out"), "--sign",
             signer.fpr, env=env)
    assert r.returncode != 0 and "no GnuPG home" in r.stderr and "Traceback" not in r.stderr
    assert not (home / ".gnupg").exists()
    assert len(stack.yum.log) == before  # not even the repo metadata was read

    env["GNUPGHOME"] = str(signer.home)
    r = _cli("build", str(m.file), "--cache", str(tmp_path / "cache"), "-o", str(tmp_path / "out"), "--sign",
             "nobody@example.org", env=env)
    assert r.returncode != 0 and "no secret key 'nobody@example.org'" in r.stderr
    assert len(stack.yum.log) == before
    with pytest.raises(BundlerError, match="no GnuPG home"):
        os.environ["GNUPGHOME"] = str(tmp_path / "absent")
        try:
            build(m, tmp_path / "out", Cache(tmp_path / "cache"), quiet=True, sign_key=signer.fpr)
        finally:
            del os.environ["GNUPGHOME"]
    assert not (tmp_path / "absent").exists() and not (tmp_path / "out").exists()


def test_plan_prints_aligned_tables(tmp_path, stack):
    path = _manifest(tmp_path, stack.manifest(packages=K8S, cni="none", extra_images=["registry.k8s.io/pause:3.9"]))
    r = _cli("plan", str(path), "--cache", str(tmp_path / "cache"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("packages to ship:")))
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith("  "))
    rows = lines[start + 1:end]
    assert len(rows) >= len(K8S)
    assert len({len(row) for row in rows}) == 1  # the size column is right-aligned, so every row is as long
    # name, version-release, arch and repo start at the same column in every row
    starts = {tuple(m.start() for m in re.finditer(r"\S+", row))[:4] for row in rows}
    assert len(starts) == 1, r.stdout


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_stages_tick_on_a_terminal_print_lines_in_a_log_and_time_even_when_silent():
    term, log = _Terminal(), io.StringIO()
    shown, logged, silent = Stages(stream=term), Stages(stream=log), Stages(enabled=False, stream=log)
    with shown.stage("resolve", "resolve: solving"):
        time.sleep(0.7)  # long enough for one tick of the elapsed time
    assert re.search(r"\rresolve: solving \.\.\. \d+ s", term.getvalue().replace("\x1b[K", ""))
    assert re.search(r"\rresolve: solving: done in \d+\.\d s\n$", term.getvalue().replace("\x1b[K", ""))
    with pytest.raises(KeyboardInterrupt), logged.stage("files", "files: 2"):
        raise KeyboardInterrupt
    assert log.getvalue().splitlines()[0] == "files: 2 ..." and "files: 2: stopped in" in log.getvalue()
    before = log.getvalue()
    for _ in range(2):
        with silent.stage("resolve", "x"):
            pass
    assert log.getvalue() == before and set(silent.seconds) == {"resolve"}
