"""The CLI as operators run it: exit codes, every bad file named, --json, the printed join command works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .bundles import IMAGES, TOP, content, write_bundle


def bundler(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bundler.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})


def test_verify_exit_codes_and_names_every_bad_file(tmp_path: Path) -> None:
    tarball = write_bundle(tmp_path)
    ok = bundler("verify", tarball)
    assert ok.returncode == 0 and "OK, 14 files match SHA256SUMS" in ok.stdout, ok.stderr
    (tmp_path / "u").mkdir()
    subprocess.run(["tar", "-xzf", str(tarball), "-C", str(tmp_path / "u")], check=True)
    top = tmp_path / "u" / TOP
    (top / "install.py").write_text("changed")
    (top / "INSTALL.md").unlink()
    bad = bundler("verify", top)
    assert bad.returncode == 1
    assert "install.py: content differs" in bad.stdout and "INSTALL.md: listed in SHA256SUMS but missing" in bad.stdout
    assert "Traceback" not in bad.stderr
    report = json.loads(bundler("verify", "--json", top).stdout)
    assert not report["ok"] and {p["path"] for p in report["problems"]} == {"install.py", "INSTALL.md"}


def test_verify_non_bundle_is_a_one_paragraph_error(tmp_path: Path) -> None:
    junk = tmp_path / "x.tar.gz"
    junk.write_text("hello")
    r = bundler("verify", junk)
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr


def test_verify_exit_codes_are_the_documented_ones(tmp_path: Path) -> None:
    """0 intact, 1 damaged/tampered or not a bundle, 2 a path that does not exist (like any bad command line)."""
    tarball = write_bundle(tmp_path)
    assert bundler("verify", tarball).returncode == 0
    (tmp_path / "u").mkdir()
    subprocess.run(["tar", "-xzf", str(tarball), "-C", str(tmp_path / "u")], check=True)
    (tmp_path / "u" / TOP / "extra").write_text("x")
    tampered = bundler("verify", tmp_path / "u" / TOP)
    assert tampered.returncode == 1 and "extra: not listed in SHA256SUMS" in tampered.stdout
    missing = bundler("verify", tmp_path / "nope.tar.gz")
    assert missing.returncode == 2, missing.stderr
    assert " ".join(missing.stderr.split()) == (f"error: {tmp_path / 'nope.tar.gz'} does not exist. Give the bundle "
                                                "tarball or its unpacked directory.")
    no_key = bundler("verify", "--key", tmp_path / "nope.asc", tarball)
    assert no_key.returncode == 2 and "does not exist" in no_key.stderr
    os.mkfifo(tmp_path / "pipe")
    pipe = bundler("verify", tmp_path / "pipe")
    assert pipe.returncode == 1 and "neither a directory nor a regular file" in " ".join(pipe.stderr.split())


def test_inspect_human_and_json(tmp_path: Path) -> None:
    tarball = write_bundle(tmp_path)
    human = bundler("inspect", tarball)
    assert human.returncode == 0 and "kubernetes  1.30.4" in human.stdout
    assert "registry.k8s.io/pause:3.9" in human.stdout
    data = json.loads(bundler("inspect", "--json", tarball).stdout)
    assert data["name"] == "k8s-1.30-el9" and data["packages"]["count"] == 3 and data["images"]["count"] == 2


def test_diff_human_and_json(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    old = write_bundle(tmp_path / "a")
    new = write_bundle(tmp_path / "b", content(images=[IMAGES[0], (IMAGES[1][0], b"etcd patched")]))
    human = bundler("diff", old, new)
    assert human.returncode == 0
    assert human.stdout.splitlines()[1] == "images: 1 changed" and len(human.stdout.splitlines()) == 3
    assert "~ registry.k8s.io/etcd:3.5.15-0  sha256:" in human.stdout
    data = json.loads(bundler("diff", "--json", old, new).stdout)
    assert data["changes"] == 1 and data["images"]["changed"][0]["ref"] == "registry.k8s.io/etcd:3.5.15-0"


def test_split_prints_the_join_command_that_works(tmp_path: Path) -> None:
    files = content()
    files["files/kubelet"] = os.urandom(2_500_000)
    tarball = write_bundle(tmp_path, files)
    r = bundler("split", tarball, "--size", "1M")
    assert r.returncode == 0, r.stderr
    assert "wrote 3 parts" in r.stdout
    command = r.stdout.strip().splitlines()[-1].strip()
    assert command.startswith("sha256sum -c ")
    original = tarball.read_bytes()
    tarball.unlink()
    assert subprocess.run(["sh", "-c", command], cwd=tmp_path, capture_output=True).returncode == 0
    assert tarball.read_bytes() == original
    assert bundler("verify", tarball).returncode == 0
    tarball.unlink()
    j = bundler("join", f"{tarball}.parts.json")
    assert j.returncode == 0 and tarball.read_bytes() == original


def test_split_too_small_is_refused(tmp_path: Path) -> None:
    r = bundler("split", write_bundle(tmp_path), "--size", "100K")
    assert r.returncode == 1 and "below the minimum of 1 MiB" in r.stderr
