"""Delta bundles (`bundler build --delta-from`) from the real test upstream (yum repos, docker-registry, site).

The change between base and target is one patch release: kubeadm 1.30.3 -> 1.30.4, and one image re-pushed
under the same tag with one new layer beside an unchanged one. The base is an older bundle (tarball or
directory) or the state `install.py export-state` measures on a site laid out from that bundle (its served
repo copy, its registry storage laid out by installer.registry_layout, its cluster record): the same code the
installer runs, with --root. The completed delta must be byte for byte the whole bundle.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from bundler.build import build
from bundler.bundle.sums import parse_sums, sha256_file
from bundler.bundle.verify import verify
from bundler.errors import BundlerError
from bundler.fetch.cache import Cache
from bundler.manifest import load_manifest
from tests.images.helpers import layer

REPO = Path(__file__).resolve().parents[2]
OLD = ["kubeadm-1.30.3", "kubelet-1.30.4", "kubectl-1.30.4", "containerd.io"]
NEW = ["kubeadm-1.30.4", "kubelet-1.30.4", "kubectl-1.30.4", "containerd.io"]
MOVED = "docker.io/library/deltatest:1"  # same tag, new digest in the newer bundle
STABLE = "docker.io/library/deltastable:1"  # unchanged
SHARED = layer(1_000_000, "delta-shared-layer")  # incompressible, like real layers


def _tool(stack, name: str, text: str) -> dict:  # noqa: ANN001
    digest = stack.site.put(f"example.org/delta/{name}", text.encode())
    return {"url": stack.site.url(f"example.org/delta/{name}"), "sha256": digest, "name": name}


def _manifest(tmp_path: Path, stack, packages: list[str], name: str, version: str,  # noqa: ANN001
              files: list[dict]) -> Path:
    p = tmp_path / f"{name}-{version}.yaml"
    p.write_text(stack.manifest(name="delta", version=version, packages=packages, cni="none", k8s=None,
                                extra_images=[MOVED, STABLE], files=files))
    return p


@pytest.fixture(scope="module")
def pair(stack_session, tmp_path_factory):  # noqa: ANN001
    """(old tarball, new full tarball, new manifest, cache, work dir): one patch release apart."""
    stack = stack_session
    work = tmp_path_factory.mktemp("delta")
    cache = Cache(work / "cache")
    stack.push(STABLE, layers=[layer(2_000_000, "delta-stable")])
    stack.push(MOVED, layers=[SHARED, layer(2_000, "delta-old")])
    same = _tool(stack, "tool-same", "#!/bin/sh\necho unchanged tool\n")
    old = build(load_manifest(_manifest(work, stack, OLD, "delta", "1.0", [same])), work / "old", cache, quiet=True)
    old_moved = stack.images[MOVED]
    stack.push(MOVED, layers=[SHARED, layer(2_000, "delta-new")])
    assert stack.images[MOVED] != old_moved
    new_manifest = _manifest(work, stack, NEW, "delta", "1.1", [same, _tool(stack, "tool-new", "#!/bin/sh\n")])
    full = build(load_manifest(new_manifest), work / "full", cache, quiet=True)
    return old.path, full.path, new_manifest, cache, work


def _unpack(tarball: Path, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-xzf", str(tarball), "-C", str(into)], check=True)
    return into / tarball.name[: -len(".tar.gz")]


def _tree(top: Path) -> dict[str, str]:
    return {p.relative_to(top).as_posix(): sha256_file(p) for p in sorted(top.rglob("*")) if p.is_file()}


def _primary_count(top: Path) -> int:
    primary = next((top / "repo/repodata").glob("*primary.xml*"))
    return gzip.decompress(primary.read_bytes()).decode().count("<package ")


def test_delta_from_an_old_bundle_ships_only_what_changed(pair, tmp_path):
    old, full, new_manifest, cache, _ = pair
    r = build(load_manifest(new_manifest), tmp_path / "out", cache, quiet=True, delta_from=old)
    assert r.path.name == "delta-1.1-el9-x86_64-delta.tar.gz"
    assert (tmp_path / "out" / "delta-1.1-el9-x86_64-delta.tar.gz.sha256").is_file()
    rep = verify(r.path)  # R9: the omitted files are listed but not missing
    assert rep.ok and rep.omitted > 0, rep.format()
    assert "delta bundle" in rep.format()
    top = _unpack(r.path, tmp_path / "x")
    bom = json.loads((top / "bundle.json").read_text())
    omitted = bom["delta"]["omitted"]
    # packages by content: the unchanged ones are left out, the new kubeadm is shipped
    names = {p["name"] for p in bom["packages"]}
    assert {"kubelet", "kubectl", "containerd.io"} < names
    assert {e["nevra"] for e in omitted["packages"]} == {p["nevra"] for p in bom["packages"] if p["name"] != "kubeadm"}
    assert any(p.name.startswith("kubeadm-1.30.4") for p in (top / "repo/Packages").iterdir())
    assert len(list((top / "repo/Packages").iterdir())) == 1
    # complete repodata and bundle.json for the target
    assert _primary_count(top) == len(bom["packages"]) == len(omitted["packages"]) + 1
    full_bom = json.loads(tarfile.open(full).extractfile(f"{full.name[:-7]}/bundle.json").read())
    assert {k: v for k, v in bom.items() if k != "delta"} == {k: v for k, v in full_bom.items()}
    # the re-pushed tag is shipped (by digest); of it only the new blobs, the shared layer is omitted
    moved = next(i for i in bom["images"] if i["ref"] == MOVED)
    blobs = top / "images/blobs/sha256"
    assert (blobs / moved["digest"].split(":")[1]).is_file()
    shared_hex = hashlib.sha256(SHARED[0]).hexdigest()
    assert not (blobs / shared_hex).exists()
    assert f"sha256:{shared_hex}" in {e["digest"] for e in omitted["blobs"]}
    stable = next(i for i in bom["images"] if i["ref"] == STABLE)
    assert stable["digest"] in {e["digest"] for e in omitted["blobs"]}
    # files by sha256: the unchanged one is omitted, the new one shipped
    assert [e["path"] for e in omitted["files"]] == ["files/tool-same"]
    assert sorted(p.name for p in (top / "files").iterdir()) == ["tool-new"]
    # SHA256SUMS is the whole bundle's: the same list as the full build
    full_top = _unpack(full, tmp_path / "full")
    sums, full_sums = (parse_sums((t / "SHA256SUMS").read_text()) for t in (top, full_top))
    assert sums.keys() == full_sums.keys()
    guides = ("bundle.json", "INSTALL.md")  # the delta's own: its `delta` section, its name and how to complete it
    assert {k: v for k, v in sums.items() if k not in guides} == {
        k: v for k, v in full_sums.items() if k not in guides}
    base = bom["delta"]["base"]
    assert base["kind"] == "bundle" and base["bundles"][0]["version"] == "1.0" and len(base["sha256"]) == 64
    assert r.delta and r.delta["packages"]["count"] == len(omitted["packages"])
    guide = (top / "INSTALL.md").read_text()
    assert "tar -xzf delta-1.1-el9-x86_64-delta.tar.gz" in guide and "complete-delta" in guide
    # much smaller than the whole bundle
    print(f"\nfull {full.stat().st_size} bytes, delta {r.path.stat().st_size} bytes")
    assert r.path.stat().st_size < full.stat().st_size / 2


def test_delta_from_an_unpacked_old_bundle_equals_the_one_from_its_tarball(pair, tmp_path):
    old, _, new_manifest, cache, _ = pair
    old_dir = _unpack(old, tmp_path / "old")
    a = build(load_manifest(new_manifest), tmp_path / "a", cache, quiet=True, delta_from=old)
    cli = subprocess.run([sys.executable, "-m", "bundler.cli", "build", str(new_manifest), "-o", str(tmp_path / "b"),
                          "--cache", str(cache.root), "--delta-from", str(old_dir), "--json"],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert cli.returncode == 0, cli.stderr
    summary = json.loads(cli.stdout)
    b = Path(summary["bundle"])
    assert b.name.endswith("-delta.tar.gz") and summary["delta"]["packages"]["count"] > 0
    ja, jb = (json.loads(tarfile.open(p).extractfile(f"{p.name[:-7]}/bundle.json").read()) for p in (a.path, b))
    assert ja["delta"]["omitted"] == jb["delta"]["omitted"]
    missing = subprocess.run([sys.executable, "-m", "bundler.cli", "build", str(new_manifest), "--delta-from",
                              str(tmp_path / "nope.json")], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    assert missing.returncode == 2 and "nope.json" in missing.stderr


def _site_from(old_top: Path, root: Path) -> None:
    """A site that installed `old_top`: its repo copy served, its images laid out in the registry storage,
    the cluster record naming it (what install.py leaves on the serving host)."""
    sys.path.insert(0, str(REPO))
    from installer import record as rec
    from installer.registry_layout import lay_out
    from installer.registry_push import Layout

    shutil.copytree(old_top / "repo", root / "opt/airgap/repo")
    lay_out(Layout(str(old_top / "images")), str(root / "var/lib/airgap-registry"))
    bom = json.loads((old_top / "bundle.json").read_text())
    record = {"recordVersion": 1, "state": "installed", "kubernetes": None,
              "bundle": {"name": bom["name"], "version": bom["version"], "sha256": rec.bundle_sha256(str(old_top)),
                         "os": "el9", "arch": "x86_64", "dir": str(old_top)},
              "inventory": {"hosts": [{"address": "127.0.0.1", "role": "control-plane"}]}}
    (root / "etc/airgap-bundler").mkdir(parents=True)
    (root / "etc/airgap-bundler/cluster.json").write_text(json.dumps(record))


def _install_py(top: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(["./install.py", *args], cwd=top, capture_output=True,
                          text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)


def test_delta_from_a_site_state_completes_on_that_site_into_the_whole_bundle(pair, tmp_path):
    old, full, new_manifest, cache, _ = pair
    old_top = _unpack(old, tmp_path / "old")
    root = tmp_path / "site"
    _site_from(old_top, root)
    state = tmp_path / "state.json"
    r = _install_py(old_top, "export-state", "--root", str(root), "-o", str(state))
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(state.read_text())
    assert doc["stateVersion"] == 1 and doc["bundles"][0]["version"] == "1.0"
    old_bom = json.loads((old_top / "bundle.json").read_text())
    assert len(doc["rpms"]) == len(old_bom["packages"]) and doc["files"] and doc["blobs"] and not doc["problems"]
    assert all(e["path"].startswith("/opt/airgap/repo/") for e in doc["rpms"])

    d = build(load_manifest(new_manifest), tmp_path / "out", cache, quiet=True, delta_from=state)
    top = _unpack(d.path, tmp_path / "x")
    bom = json.loads((top / "bundle.json").read_text())
    assert bom["delta"]["base"]["kind"] == "state" and bom["delta"]["base"]["sha256"] == sha256_file(state)
    assert len(bom["delta"]["omitted"]["packages"]) == len(bom["packages"]) - 1

    # a base blob gone from the registry storage: exit 2 naming it, nothing written
    gone = bom["delta"]["omitted"]["blobs"][0]["sha256"]
    blob = root / "var/lib/airgap-registry/docker/registry/v2/blobs/sha256" / gone[:2] / gone / "data"
    aside = tmp_path / "aside"
    os.rename(blob, aside)
    before = _tree(top)
    r = _install_py(top, "complete-delta", "--root", str(root))
    assert r.returncode == 2, r.stdout + r.stderr
    assert gone[:16] in r.stderr and "Nothing was changed" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert _tree(top) == before
    planned = _install_py(top, "plan", "complete-delta", "--root", str(root))
    assert planned.returncode == 2 and gone[:16] in planned.stderr
    # the same check runs on its own before a command that uses the bundle: before any host (192.0.2.1 would hang)
    for args in (("plan", "--control-plane", "192.0.2.1"), ("add-node", "--workers", "192.0.2.1")):
        r = _install_py(top, *args, "--root", str(root))
        assert r.returncode == 2 and gone[:16] in r.stderr and "connecting" not in r.stdout, (args, r.stderr)
    assert _tree(top) == before
    os.rename(aside, blob)

    # add-node completes the delta first (then refuses it: it is not the installed bundle), touching no host
    auto = _install_py(_unpack(d.path, tmp_path / "auto"), "add-node", "--workers", "192.0.2.1", "--root", str(root))
    assert "delta bundle: completed" in auto.stdout and auto.returncode == 1, auto.stdout + auto.stderr
    assert "is not the one installed" in auto.stderr, auto.stderr
    assert verify(tmp_path / "auto" / d.path.name[: -len(".tar.gz")]).omitted == 0

    planned = _install_py(top, "plan", "complete-delta", "--root", str(root))
    assert planned.returncode == 0 and "changes nothing" in planned.stdout, planned.stdout + planned.stderr
    assert _tree(top) == before
    r = _install_py(top, "complete-delta", "--root", str(root))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "delta bundle completed" in r.stdout
    full_top = _unpack(full, tmp_path / "full")
    completed, whole = _tree(top), _tree(full_top)
    differ = ("bundle.json", "INSTALL.md", "SHA256SUMS")  # the delta's own guide and bill of materials
    assert {k: v for k, v in completed.items() if k not in differ} == {
        k: v for k, v in whole.items() if k not in differ}
    assert verify(top).ok and verify(top).omitted == 0
    again = _install_py(top, "complete-delta", "--root", str(root))
    assert again.returncode == 0 and "completed: 0 item(s)" in again.stdout, again.stdout


def test_a_bad_base_is_refused_before_any_download(pair, tmp_path):
    _, _, new_manifest, cache, _ = pair
    bad = tmp_path / "state.json"
    bad.write_text('{"stateVersion": 7}')
    with pytest.raises(BundlerError, match="stateVersion is 7"):
        build(load_manifest(new_manifest), tmp_path / "out", cache, quiet=True, delta_from=bad)
    bad.write_text('{"stateVersion": 1, "rpms": [{"sha256": "zz"}]}')
    with pytest.raises(BundlerError, match="malformed entry"):
        build(load_manifest(new_manifest), tmp_path / "out", cache, quiet=True, delta_from=bad)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("*.tar.gz"))
