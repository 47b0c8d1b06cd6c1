"""The write phase under hostile conditions: a poisoned cache, a read-only cache, SIGKILL, full disks, prune.

Real builds (CLI subprocesses) against the loopback stack; disks are real tmpfs mounts made by the test
(we run as root; a test skips only if mount(8) is not permitted here).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bundler.build import build, lock
from bundler.bundle.sums import parse_sums
from bundler.fetch.cache import Cache
from bundler.fetch.prune import prune
from bundler.manifest import load_manifest
from tests.images.helpers import layer

K8S = ["kubeadm-1.30.4", "kubelet-1.30.4", "kubectl-1.30.4", "containerd.io"]
TOP = "stack-1.0-el9-x86_64"
BIG = "registry.k8s.io/h2-big:1"  # one image with a 3 MiB layer: more than the 2 MiB test disks hold
HUGE = "registry.k8s.io/h2-huge:1"  # 24 MiB: a write phase long enough to kill it in the middle


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@pytest.fixture(scope="module")
def big_images(stack_session) -> dict[str, str]:  # noqa: ANN001
    return {BIG: stack_session.push(BIG, layers=[layer(3 << 20, "h2-big")]),
            HUGE: stack_session.push(HUGE, layers=[layer(24 << 20, "h2-huge")])}


def manifest(tmp_path: Path, stack, images: list[str] = (), **kw) -> Path:  # noqa: ANN001
    p = tmp_path / "stack.yaml"
    p.write_text(stack.manifest(packages=K8S, extra_images=list(images), **kw))
    return p


def cli_build(path: Path, cache: Path, out: Path, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "bundler.cli", "build", str(path), "--cache", str(cache), "-o", str(out), "-q",
           *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def unpack(tarball: Path, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-xf", str(tarball), "-C", str(into)], check=True)
    return into / TOP


def assert_sums_agree_with_bundle_json(top: Path) -> None:
    """SHA256SUMS lists the real bytes, and bundle.json records the same digest for every file it names."""
    sums = parse_sums((top / "SHA256SUMS").read_text())
    present = {p.relative_to(top).as_posix() for p in top.rglob("*") if p.is_file()} - {"SHA256SUMS"}
    assert set(sums) == present
    for rel, digest in sums.items():
        assert sha256(top / rel) == digest, rel
    bom = json.loads((top / "bundle.json").read_text())
    for entry in bom["packages"] + bom["files"]:
        assert sums[entry["path"]] == entry["sha256"], entry["path"]
    blobs = {rel.rsplit("/", 1)[1]: d for rel, d in sums.items() if rel.startswith("images/blobs/sha256/")}
    assert blobs and all(name == d for name, d in blobs.items())
    assert all(i["digest"].split(":", 1)[1] in blobs for i in bom["images"])


def verify(bundle: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "bundler.cli", "verify", str(bundle)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def flip(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x01
    path.write_bytes(bytes(data))  # in place: same inode, like bit rot or a tampering hand


# ---- 1. every shipped byte is checked against what bundle.json records ----------------------------------------

def test_a_normal_build_ships_sums_that_agree_with_bundle_json(tmp_path, stack):
    r = cli_build(manifest(tmp_path, stack), tmp_path / "cache", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert_sums_agree_with_bundle_json(unpack(tmp_path / "out" / f"{TOP}.tar.gz", tmp_path / "x"))


@pytest.mark.parametrize("fmt", ["tar.gz", "dir"])
def test_poisoned_cache_entries_are_evicted_refetched_and_the_bundle_is_right(tmp_path, stack, fmt):
    path = manifest(tmp_path, stack)
    cache = tmp_path / "cache"
    r = cli_build(path, cache, tmp_path / "clean")
    assert r.returncode == 0, r.stderr
    clean = unpack(tmp_path / "clean" / f"{TOP}.tar.gz", tmp_path / "x")
    bom = json.loads((clean / "bundle.json").read_text())
    rpm = next(p for p in bom["packages"] if p["name"] == "kubectl")
    registry = next(f for f in bom["files"] if f["name"] == "registry")  # extracted from an archive
    layers = sorted((p for p in (clean / "images/blobs/sha256").iterdir()), key=lambda p: p.stat().st_size)
    blob = layers[-1].name
    victims = [rpm["sha256"], registry["sha256"], blob]
    for digest in victims:
        flip(cache / "blobs" / "sha256" / digest)

    r = cli_build(path, cache, tmp_path / "again", "--format", fmt)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "again" / (TOP if fmt == "dir" else f"{TOP}.tar.gz")
    verify(out)
    top = out if fmt == "dir" else unpack(out, tmp_path / "y")
    assert_sums_agree_with_bundle_json(top)
    assert (top / "SHA256SUMS").read_bytes() == (clean / "SHA256SUMS").read_bytes()  # the right bytes, all of them
    if fmt != "dir":
        assert sha256(out) == sha256(tmp_path / "clean" / f"{TOP}.tar.gz")
    for digest in victims:  # the cache healed
        assert sha256(cache / "blobs" / "sha256" / digest) == digest
    shipped = [out.name] if fmt == "dir" else [out.name, f"{out.name}.sha256"]  # a tarball has its .sha256 beside it
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == shipped


def test_a_cache_that_stays_corrupt_is_named_and_nothing_is_written(tmp_path, stack, monkeypatch):
    """If the refetched copy is corrupted again, the build stops naming the artifact (no wrong bundle)."""
    import bundler.build as b

    m = load_manifest(manifest(tmp_path, stack, cni="none", k8s=None))
    cache = Cache(tmp_path / "cache")
    first = build(m, tmp_path / "a", cache, quiet=True)
    rpm = next(p for p in first.inputs.packages if p["name"] == "kubectl")
    real_fetch = b.fetch

    def fetch_then_rot(*a, **kw):  # noqa: ANN002, ANN003, ANN202 - a disk that corrupts what it stores
        got = real_fetch(*a, **kw)
        flip(got)
        return got

    monkeypatch.setattr(b, "fetch", fetch_then_rot)
    flip(cache.path("sha256", rpm["digest"]))
    with pytest.raises(b.BundlerError, match=r"package kubectl-.*still did not match .* nothing was written"):
        build(m, tmp_path / "b", cache, quiet=True)
    assert list((tmp_path / "b").iterdir()) == []


# ---- 2. a warm read-only cache builds; staging is in the output directory ----------------------------------------

@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_a_warm_read_only_cache_builds_the_same_bytes(tmp_path, stack):
    path = manifest(tmp_path, stack)
    with tmpfs(tmp_path / "shared", "64m") as shared:
        cache = Cache(shared / "cache")
        lock(load_manifest(path), cache)
        first = build(load_manifest(path), tmp_path / "a", cache, quiet=True, locked=True)
        before = _snapshot(shared)
        r = subprocess.run(["mount", "-o", "remount,ro", str(shared)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot remount read-only ({r.stderr.strip()})")
        for fmt in ("tar.gz", "dir"):
            res = cli_build(path, shared / "cache", tmp_path / "b", "--locked", "--format", fmt)
            assert res.returncode == 0, res.stderr
        assert sha256(tmp_path / "b" / f"{TOP}.tar.gz") == sha256(first.path)
        assert_sums_agree_with_bundle_json(tmp_path / "b" / TOP)
        assert _snapshot(shared) == before  # no write at all
        assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [TOP, f"{TOP}.tar.gz", f"{TOP}.tar.gz.sha256"]
        subprocess.run(["mount", "-o", "remount,rw", str(shared)], capture_output=True)


def test_a_warm_read_only_cache_builds_unlocked_too(tmp_path, stack):
    """Unlocked, the calico manifest (no publisher checksum) is downloaded again: into the build's scratch dir in
    the output directory, not the cache, and the cached copy is used; the scratch dir is gone at the end."""
    path = manifest(tmp_path, stack)
    with tmpfs(tmp_path / "shared", "64m") as shared:
        cache = Cache(shared / "cache")
        first = build(load_manifest(path), tmp_path / "a", cache, quiet=True)
        before = _snapshot(shared)
        r = subprocess.run(["mount", "-o", "remount,ro", str(shared)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot remount read-only ({r.stderr.strip()})")
        try:
            res = cli_build(path, shared / "cache", tmp_path / "b")
            assert res.returncode == 0, res.stderr
            assert sha256(tmp_path / "b" / f"{TOP}.tar.gz") == sha256(first.path)
            assert _snapshot(shared) == before  # no write at all
            assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [f"{TOP}.tar.gz", f"{TOP}.tar.gz.sha256"]
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(shared)], capture_output=True)


def test_a_cold_read_only_cache_is_one_paragraph(tmp_path, stack):
    path = manifest(tmp_path, stack, cni="none", k8s=None)
    with tmpfs(tmp_path / "shared", "8m") as shared:
        (shared / "cache").mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(shared)], check=True)
        r = cli_build(path, shared / "cache", tmp_path / "out")
        subprocess.run(["mount", "-o", "remount,rw", str(shared)], capture_output=True)
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr and "read-only" in r.stderr
    assert str(shared / "cache") in r.stderr.replace("\n", " ")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_a_read_only_output_directory_is_one_paragraph(tmp_path, stack):
    path = manifest(tmp_path, stack, cni="none", k8s=None)
    with tmpfs(tmp_path / "ro", "8m") as ro:
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        r = cli_build(path, tmp_path / "cache", ro / "out")
        subprocess.run(["mount", "-o", "remount,rw", str(ro)], capture_output=True)
        assert list(ro.iterdir()) == []
    assert r.returncode == 1, r.stderr
    _one_paragraph(r.stderr)
    text = " ".join(r.stderr.split())
    assert f"{ro / 'out'} is on a read-only filesystem" in text and "output directory (-o) must be writable" in text


# ---- 3. SIGKILL in the write phase, then run again ----------------------------------------------------------------

def test_sigkill_during_write_then_rerun_cleans_up_and_gives_identical_bytes(tmp_path, stack, big_images):
    path = manifest(tmp_path, stack, images=[HUGE], cni="none", k8s=None)
    cache = tmp_path / "cache"
    r = cli_build(path, cache, tmp_path / "clean")
    assert r.returncode == 0, r.stderr
    reference = sha256(tmp_path / "clean" / f"{TOP}.tar.gz")
    out = tmp_path / "out"
    rng = random.Random(20261201)
    left_behind = []
    cmd = [sys.executable, "-m", "bundler.cli", "build", str(path), "--cache", str(cache), "-o", str(out), "-q"]
    for _ in range(3):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                if any(".partial-" in p.name for p in out.glob(".*")):
                    break  # the tarball is being written
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, 0.05))  # somewhere in the write of the 24 MiB layer
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
        left_behind += [p.name for p in out.iterdir() if p.name.startswith(".")]
        (out / f"{TOP}.tar.gz").unlink(missing_ok=True)  # in case it got that far
    assert any(".partial-" in n for n in left_behind) and any(".staging-" in n for n in left_behind), left_behind
    r = cli_build(path, cache, out)
    assert r.returncode == 0, r.stderr
    # the dead builds' leftovers are gone
    assert sorted(p.name for p in out.iterdir()) == [f"{TOP}.tar.gz", f"{TOP}.tar.gz.sha256"]
    assert sha256(out / f"{TOP}.tar.gz") == reference


def test_stale_cleanup_spares_live_builds_and_other_bundles(tmp_path):
    from bundler.bundle.workspace import Workspace, clean_stale

    out = tmp_path / "out"
    live = Workspace(out, TOP)
    live.create()
    (live.partial(out / f"{TOP}.tar.gz")).write_bytes(b"live")
    dead = [out / f".{TOP}.staging-999999-0badf00d", out / f".{TOP}.tar.gz.partial-999999-0badf00d",
            out / f".{TOP}.tar.gz.partial-999999"]
    dead[0].mkdir()
    (dead[0] / "f").write_bytes(b"x")
    dead[1].write_bytes(b"dead")
    dead[2].write_bytes(b"older builder")
    other = [out / ".other-1.0-el9-x86_64.staging-999999-0badf00d", out / f".{TOP}-2.tar.gz.partial-999999-00"]
    other[0].mkdir()
    other[1].write_bytes(b"not ours")
    assert sorted(clean_stale(out, TOP)) == sorted(dead)
    legacy = tmp_path / "cache" / "staging"  # an older builder staged in the cache
    (legacy / f"{TOP}.999999").mkdir(parents=True)
    (legacy / f"{TOP}.{os.getpid()}").mkdir()
    from bundler.bundle.workspace import clean_legacy_staging

    clean_legacy_staging(tmp_path / "cache", TOP)
    assert [p.name for p in legacy.iterdir()] == [f"{TOP}.{os.getpid()}"]
    assert live.staging.is_dir() and live.partial(out / f"{TOP}.tar.gz").exists() and all(p.exists() for p in other)
    live.close()
    assert clean_stale(out, TOP) == [] and not live.staging.exists()


# ---- 4. full disks: one paragraph, nothing half-written --------------------------------------------------------

def _one_paragraph(stderr: str) -> None:
    assert stderr.startswith("error: ") and "Traceback" not in stderr
    assert "\n\n" not in stderr.strip()


def test_output_disk_too_small_is_refused_before_writing(tmp_path, stack, big_images):
    path = manifest(tmp_path, stack, images=[BIG], cni="none", k8s=None)
    with tmpfs(tmp_path / "small", "2m") as out:
        r = cli_build(path, tmp_path / "cache", out)
        assert r.returncode == 1, r.stderr
        _one_paragraph(r.stderr)
        text = " ".join(r.stderr.split())
        assert f"not enough disk space for the bundle (output directory) in {out}" in text
        assert "MiB is needed" in text and "-o/--output" in text
        assert list(out.iterdir()) == []


def test_cache_disk_too_small_is_refused_before_downloading_the_images(tmp_path, stack, big_images):
    path = manifest(tmp_path, stack, images=[BIG], cni="none", k8s=None)
    with tmpfs(tmp_path / "small", "2m") as small:
        r = cli_build(path, small / "cache", tmp_path / "out")
        assert r.returncode == 1, r.stderr
        _one_paragraph(r.stderr)
        text = " ".join(r.stderr.split())
        assert f"not enough disk space for the image downloads (the cache) in {small / 'cache'}" in text
        assert "bundler cache prune" in text
        assert not list((small / "cache").glob("partial/*"))
    assert list((tmp_path / "out").iterdir()) == []


def test_disk_full_mid_write_is_one_paragraph_and_nothing_is_left(tmp_path, stack, big_images, monkeypatch):
    """The free-space check passed but the disk filled anyway (someone else wrote): ENOSPC is reported, clean."""
    import bundler.build as b

    m = load_manifest(manifest(tmp_path, stack, images=[BIG], cni="none", k8s=None))
    cache = Cache(tmp_path / "cache")
    build(m, tmp_path / "warm", cache, quiet=True)
    monkeypatch.setattr("bundler.bundle.space.ensure_space", lambda *a, **kw: None)
    with tmpfs(tmp_path / "small", "4m") as out:
        (out / "filler").write_bytes(b"\0" * (2 << 20))  # the staging copies fit, the tarball does not
        with pytest.raises(b.BundlerError, match=r"is full .* removed what it had written") as e:
            build(m, out, cache, quiet=True)
        assert str(e.value).startswith(f"the disk holding {out}/")
        assert [p.name for p in out.iterdir()] == ["filler"]


# ---- 5. prune while builds run; freed counts each inode once ----------------------------------------------------

def test_prune_keeps_what_a_live_build_uses_and_its_partials(tmp_path):
    cache = Cache(tmp_path / "cache")
    blobs = cache.root / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    named, touched, old = (blobs / (c * 64) for c in "abc")
    for p in (named, touched, old):
        p.write_bytes(b"x" * 100)
    ancient = time.time() - 10 * 86400
    for p in (named, old):
        os.utime(p, (ancient, ancient))
    partial = cache.root / "partial" / "in-flight"
    partial.parent.mkdir()
    partial.write_bytes(b"half")
    with cache.lease() as lease:
        lease.record([f"sha256:{'a' * 64}"])
        res = prune(cache)
        assert (res.removed, res.freed, res.live_builds) == (1, 100, 1)
        assert named.exists() and touched.exists() and not old.exists() and partial.exists()
    res = prune(cache)  # the build is done: now everything goes
    assert (res.removed, res.freed, res.live_builds) == (2, 204, 0) and not partial.parent.exists()
    assert list((cache.root / "locks").iterdir()) == []


def test_prune_skips_the_lease_of_a_killed_build(tmp_path):
    cache = Cache(tmp_path / "cache")
    code = ("import sys, os; sys.path.insert(0, os.getcwd()); from bundler.fetch.cache import Cache; "
            f"l = Cache({str(cache.root)!r}).lease().acquire(); l.record(['sha256:' + 'a' * 64]); "
            "os.kill(os.getpid(), 9)")
    subprocess.run([sys.executable, "-c", code], check=False)
    assert len(list((cache.root / "locks").glob("*.lease"))) == 1
    res = prune(cache)
    assert res.live_builds == 0 and list((cache.root / "locks").iterdir()) == []


def test_freed_counts_an_inode_once_and_only_when_its_last_link_goes(tmp_path):
    cache = Cache(tmp_path / "cache")
    blobs = cache.root / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    shipped, alone, staged = (blobs / (c * 64) for c in "def")
    shipped.write_bytes(b"s" * 1000)
    alone.write_bytes(b"a" * 300)
    staged.write_bytes(b"t" * 50)
    bundle_dir = tmp_path / "bundle"  # a --format dir bundle hard-links the cache: pruning frees nothing of it
    bundle_dir.mkdir()
    os.link(shipped, bundle_dir / "layer")
    old_staging = cache.root / "staging" / "x.1"  # an older builder's staging: links to a blob
    old_staging.mkdir(parents=True)
    os.link(staged, old_staging / "pkg.rpm")
    res = prune(cache)
    assert res.removed == 3 and res.freed == 300 + 50
    assert (bundle_dir / "layer").read_bytes() == b"s" * 1000


def test_a_build_survives_prunes_running_beside_it(tmp_path, stack, big_images):
    path = manifest(tmp_path, stack, images=[BIG])
    r = cli_build(path, tmp_path / "ref-cache", tmp_path / "ref")
    assert r.returncode == 0, r.stderr
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-m", "bundler.cli", "build", str(path), "--cache", str(cache), "-o",
           str(tmp_path / "out"), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    prunes = 0
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            prune(Cache(cache))
            prunes += 1
            time.sleep(0.005)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert prunes > 3
    assert sha256(tmp_path / "out" / f"{TOP}.tar.gz") == sha256(tmp_path / "ref" / f"{TOP}.tar.gz")


def test_a_rotten_cni_manifest_in_the_cache_does_not_pick_the_images(tmp_path, stack):
    """The CNI manifest decides images before anything is written: it is checked before it is read."""
    text = ("apiVersion: apps/v1\nkind: DaemonSet\nspec:\n  template:\n    spec:\n      containers:\n"
            "        - name: c\n          image: registry.k8s.io/pause:3.9\n")
    digest = stack.site.put("raw.githubusercontent.com/h2/cni/v1/cni.yaml", text.encode())
    files = [{"url": "https://raw.githubusercontent.com/h2/cni/v1/cni.yaml", "kind": "manifest", "sha256": digest}]
    path = manifest(tmp_path, stack, cni="none", k8s=None, files=files)
    cache = tmp_path / "cache"
    r = cli_build(path, cache, tmp_path / "a")
    assert r.returncode == 0, r.stderr
    cached = cache / "blobs" / "sha256" / digest
    flip(cached, cached.read_bytes().index(b"pause"))  # "qause": an image that does not exist
    r = cli_build(path, cache, tmp_path / "b")
    assert r.returncode == 0, r.stderr
    top = unpack(tmp_path / "b" / f"{TOP}.tar.gz", tmp_path / "x")
    assert [i["ref"] for i in json.loads((top / "bundle.json").read_text())["images"]] == ["registry.k8s.io/pause:3.9"]
    assert sha256(cached) == digest


def test_cli_prune_says_what_it_kept_for_running_builds(tmp_path):
    cache = Cache(tmp_path / "cache")
    blob = cache.root / "blobs" / "sha256" / ("a" * 64)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"in use")
    cmd = [sys.executable, "-m", "bundler.cli", "cache", "prune", "--cache", str(cache.root)]
    with cache.lease():
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "removed 0 objects, freed 0 B",
        "1 build(s) running on this cache: kept the 1 objects they use and their partial downloads; run prune again "
        "when they are done to clear those."]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.stdout.splitlines() == ["removed 1 objects, freed 6 B"] and not blob.exists()


def test_prune_of_leftovers_tolerates_entries_that_vanish_under_it(tmp_path, monkeypatch):
    """Manifests are parsed before a build takes its lease, so an entry's temporary name can be renamed between
    prune's listing and its lstat: that entry is skipped, never a traceback."""
    cache = Cache(tmp_path / "cache")
    d = cache.root / "manifests"
    d.mkdir(parents=True)
    (d / "kept.json").write_text("{}")
    real = Path.rglob

    def listing_with_a_ghost(self, pattern):  # noqa: ANN001, ANN202
        yield self / ".ghost.json.tmp1-2"  # listed, then renamed away by the writer
        yield from real(self, pattern)

    monkeypatch.setattr(Path, "rglob", listing_with_a_ghost)
    res = prune(cache)
    assert not d.exists() and res.freed == 2
