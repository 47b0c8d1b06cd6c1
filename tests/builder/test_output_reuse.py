"""A rebuild keeps the unchanged tarball it wrote before (bundle/reuse.py), and only when every byte checks.

Real builds against the loopback stack (docker-registry, the rpmbuild + createrepo_c yum repos, HTTP).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bundler.build import build
from bundler.bundle import reuse
from bundler.fetch.cache import Cache
from bundler.manifest import load_manifest

K8S = ["kubeadm-1.30.4", "kubelet-1.30.4", "kubectl-1.30.4", "containerd.io"]
TOP = "stack-1.0-el9-x86_64"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli(path: Path, cache: Path, out: Path, *extra: str, env: dict | None = None) -> dict:
    r = subprocess.run([sys.executable, "-m", "bundler.cli", "build", str(path), "--cache", str(cache), "-o", str(out),
                        "--json", *extra], capture_output=True, text=True, timeout=300,
                       env={**os.environ, **(env or {})})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def verify(bundle: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "bundler.cli", "verify", str(bundle)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture
def manifest(tmp_path: Path, stack) -> Path:  # noqa: ANN001
    p = tmp_path / "stack.yaml"
    p.write_text(stack.manifest(packages=K8S, cni="none", k8s=None))
    return p


def test_a_rebuild_keeps_the_unchanged_tarball_and_says_so(tmp_path: Path, manifest: Path) -> None:
    first = cli(manifest, tmp_path / "cache", tmp_path / "out")
    tarball = Path(first["bundle"])
    st = tarball.stat()
    assert first["unchanged"] is False
    again = cli(manifest, tmp_path / "cache", tmp_path / "out")
    assert again["unchanged"] is True and again["sha256"] == first["sha256"] == sha256(tarball)
    assert (tarball.stat().st_ino, tarball.stat().st_mtime_ns) == (st.st_ino, st.st_mtime_ns)  # not written again
    assert Path(again["sha256File"]).read_text() == f"{first['sha256']}  {tarball.name}\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [tarball.name, f"{tarball.name}.sha256"]
    r = subprocess.run([sys.executable, "-m", "bundler.cli", "build", str(manifest), "--cache", str(tmp_path / "cache"),
                        "-o", str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "unchanged:" in r.stdout and "checked against the sha256" in r.stdout, r.stdout
    verify(tarball)


@pytest.mark.parametrize("damage", ["flip a byte", "append", "remove the record", "edit the record"])
def test_a_tarball_that_does_not_check_is_written_again(tmp_path: Path, manifest: Path, damage: str) -> None:
    first = cli(manifest, tmp_path / "cache", tmp_path / "out")
    tarball = Path(first["bundle"])
    rec = reuse._record_path(tmp_path / "cache", tarball)
    assert rec.is_file()
    if damage == "flip a byte":  # bit rot or a tampering hand: same size, same inode
        data = bytearray(tarball.read_bytes())
        data[len(data) // 2] ^= 1
        tarball.write_bytes(bytes(data))
    elif damage == "append":
        with open(tarball, "ab") as f:
            f.write(b"x")
    elif damage == "remove the record":
        rec.unlink()
    else:
        rec.write_text(rec.read_text().replace(first["sha256"], "0" * 64))
    again = cli(manifest, tmp_path / "cache", tmp_path / "out")
    assert again["unchanged"] is False and again["sha256"] == first["sha256"] == sha256(tarball)
    verify(tarball)


def test_any_change_of_the_inputs_writes(tmp_path: Path, manifest: Path) -> None:
    """The key covers the tree and the writer's settings: another SOURCE_DATE_EPOCH gives other bytes."""
    first = cli(manifest, tmp_path / "cache", tmp_path / "out")
    other = cli(manifest, tmp_path / "cache", tmp_path / "out", env={"SOURCE_DATE_EPOCH": "1700000000"})
    assert other["unchanged"] is False and other["sha256"] != first["sha256"]
    assert sha256(Path(other["bundle"])) == other["sha256"]
    back = cli(manifest, tmp_path / "cache", tmp_path / "out")
    assert back["unchanged"] is False and back["sha256"] == first["sha256"]  # the record follows the bytes
    assert cli(manifest, tmp_path / "cache", tmp_path / "out")["unchanged"] is True


def test_another_output_directory_or_format_is_written(tmp_path: Path, manifest: Path) -> None:
    first = cli(manifest, tmp_path / "cache", tmp_path / "a")
    elsewhere = cli(manifest, tmp_path / "cache", tmp_path / "b")
    assert elsewhere["unchanged"] is False and elsewhere["sha256"] == first["sha256"]
    plain = cli(manifest, tmp_path / "cache", tmp_path / "a", "--format", "tar")
    assert plain["unchanged"] is False and plain["bundle"].endswith(".tar")


def test_a_poisoned_cache_cannot_reach_a_kept_tarball(tmp_path: Path, manifest: Path) -> None:
    """The kept tarball is the bytes checked when it was written: a cache entry rotten since is not read at all,
    and a build into another directory still finds and heals it."""
    first = cli(manifest, tmp_path / "cache", tmp_path / "out")
    bom = json.loads(subprocess.run(["tar", "-xOzf", first["bundle"], f"{TOP}/bundle.json"], capture_output=True,
                                    check=True).stdout)
    rpm = next(p for p in bom["packages"] if p["name"] == "kubectl")
    victim = tmp_path / "cache" / "blobs" / "sha256" / rpm["sha256"]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 1
    victim.write_bytes(bytes(data))
    kept = cli(manifest, tmp_path / "cache", tmp_path / "out")
    assert kept["unchanged"] is True and sha256(Path(kept["bundle"])) == first["sha256"]
    healed = cli(manifest, tmp_path / "cache", tmp_path / "other")
    assert healed["unchanged"] is False and healed["sha256"] == first["sha256"] and sha256(victim) == rpm["sha256"]


def test_a_signed_bundle_is_always_written(tmp_path: Path, manifest: Path, gpg_keys, monkeypatch) -> None:  # noqa: ANN001
    signer, _ = gpg_keys
    monkeypatch.setenv("GNUPGHOME", str(signer.home))
    m = load_manifest(manifest)
    cache = Cache(tmp_path / "cache")
    a = build(m, tmp_path / "out", cache, quiet=True, sign_key=signer.fpr)
    ino = a.path.stat().st_ino
    b = build(m, tmp_path / "out", cache, quiet=True, sign_key=signer.fpr)
    assert not b.unchanged and b.path.stat().st_ino != ino
    assert not reuse._record_path(cache.root, b.path).exists()


def test_a_read_only_record_store_only_means_writing(tmp_path: Path, manifest: Path) -> None:
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / reuse.DIR).write_text("not a directory")  # records cannot be kept
    first = cli(manifest, tmp_path / "cache", tmp_path / "out")
    again = cli(manifest, tmp_path / "cache", tmp_path / "out")
    assert not first["unchanged"] and not again["unchanged"] and again["sha256"] == first["sha256"]


def test_segment_digests_from_the_first_check_carry_later_checks(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """Unit level, on a plain file: the first check records per-segment digests (reads split at segment edges),
    later checks verify segments on two threads, and a flipped byte in any segment is caught either way."""
    monkeypatch.setattr(reuse, "SEGMENT", 3 * 4096)
    monkeypatch.setattr(reuse, "CHUNK", 5000)  # reads cross segment edges
    final = tmp_path / "b.tar.gz"
    data = hashlib.shake_256(b"reuse").digest(10 * 4096 + 123)
    final.write_bytes(data)
    reuse.record(tmp_path / "cache", final, "k", hashlib.sha256(data).hexdigest())
    seen: list[int] = []
    def check(key: str = "k", progress=None) -> str | None:  # noqa: ANN001
        rec = reuse.candidate(tmp_path / "cache", final, key)
        return None if rec is None else reuse.reusable(tmp_path / "cache", final, rec, progress)

    assert check("k", seen.append) == hashlib.sha256(data).hexdigest()
    assert sum(seen) == len(data)
    rec = json.loads(reuse._record_path(tmp_path / "cache", final).read_text())
    edges = range(0, len(data), reuse.SEGMENT)
    assert rec["segments"] == [hashlib.sha256(data[i:i + reuse.SEGMENT]).hexdigest() for i in edges]
    seen.clear()
    assert check("k", seen.append) == rec["sha256"]  # from the segments
    assert sum(seen) == len(data)
    assert check("other key") is None
    for where in (0, reuse.SEGMENT - 1, reuse.SEGMENT, len(data) - 1):
        bad = bytearray(data)
        bad[where] ^= 1
        final.write_bytes(bytes(bad))
        assert check() is None, where
    final.write_bytes(data[:-1])
    assert check() is None
