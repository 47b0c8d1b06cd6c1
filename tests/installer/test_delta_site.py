"""The site side of delta bundles, with --root: export-state measures (a damaged registry blob is left out and
named, the OS media is not read), complete-delta names every missing item in one paragraph (exit 2, nothing
written), completes from the site and leaves nothing a re-check refuses, also after a completion killed midway.
The delta bundle is the conformance test's (tests/bundle/test_conformance.delta_files), unpacked with tar."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from installer.cli import main
from tests.bundle.bundles import TOP, write_bundle
from tests.bundle.test_conformance import delta_files

BLOBS = "var/lib/airgap-registry/docker/registry/v2/blobs/sha256"


def _put(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _blob(root: Path, data: bytes, name: str | None = None) -> str:
    hexd = name or hashlib.sha256(data).hexdigest()
    _put(root / BLOBS / hexd[:2] / hexd / "data", data)
    return hexd


def _record(root: Path, installed: Path) -> None:
    record = {"state": "installed", "bundle": {"name": "k8s-1.30-el9", "version": "1.0.0", "sha256": "a" * 64,
                                               "os": "el9", "arch": "x86_64", "dir": str(installed)},
              "inventory": {"hosts": [{"address": "127.0.0.1", "role": "control-plane"}]}}
    _put(root / "etc/airgap-bundler/cluster.json", json.dumps(record).encode())


def _delta(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    files, omitted = delta_files()
    tarball = write_bundle(tmp_path, files, also_listed=omitted)
    subprocess.run(["tar", "-xzf", str(tarball), "-C", str(tmp_path)], check=True)
    return tmp_path / TOP, omitted


def _site(tmp_path: Path, omitted: dict[str, bytes]) -> Path:
    """A site holding every omitted item (the RPM under another name: found by content)."""
    root = tmp_path / "site"
    installed = tmp_path / "installed"
    for rel, data in omitted.items():
        if rel.startswith("repo/"):
            _put(root / "opt/airgap/repo/Packages/renamed.rpm", data)
        elif rel.startswith("images/"):
            _blob(root, data)
        else:
            _put(installed / rel, data)
    _record(root, installed)
    return root


def _tree(top: Path) -> dict[str, str]:
    return {p.relative_to(top).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(top.rglob("*")) if p.is_file()}


def test_export_state_measures_and_leaves_out_a_damaged_blob(tmp_path, capsys):
    root = tmp_path / "site"
    rpm = _put(root / "opt/airgap/repo/Packages/a-1-1.x86_64.rpm", b"rpm a")
    _put(root / "opt/airgap/media/BaseOS/Packages/m.rpm", b"the OS media: never read")
    good = _blob(root, b"layer")
    bad = _blob(root, b"rotten", name="b" * 64)
    installed = tmp_path / "installed"
    _put(installed / "files/registry", b"registry binary")
    _record(root, installed)
    out = tmp_path / "state.json"
    assert main(["export-state", "--root", str(root), "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["stateVersion"] == 1 and doc["bundles"] == [{"name": "k8s-1.30-el9", "version": "1.0.0",
                                                            "sha256": "a" * 64}]
    assert doc["rpms"] == [{"path": "/opt/airgap/repo/Packages/a-1-1.x86_64.rpm", "size": 5,
                            "sha256": hashlib.sha256(rpm.read_bytes()).hexdigest()}]
    assert doc["blobs"] == [{"digest": f"sha256:{good}", "size": 5}]
    assert doc["files"][0]["path"] == "files/registry"
    assert len(doc["problems"]) == 1 and bad in doc["problems"][0]
    assert bad in capsys.readouterr().err


def test_export_state_refuses_a_host_that_serves_nothing(tmp_path, capsys):
    assert main(["export-state", "--root", str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Run export-state on the serving host" in err


def test_missing_items_are_named_in_one_paragraph_and_nothing_is_written(tmp_path, capsys):
    top, omitted = _delta(tmp_path)
    root = tmp_path / "site"
    _record(root, tmp_path / "installed")
    before = _tree(top)
    assert main(["complete-delta", "--root", str(root), "--bundle", str(top)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs 3 item(s)" in err and "Nothing was changed" in err, err
    for rel in omitted:
        assert rel in err, (rel, err)
    assert _tree(top) == before


def test_completion_from_the_site_and_after_a_killed_run(tmp_path, capsys):
    top, omitted = _delta(tmp_path)
    root = _site(tmp_path, omitted)
    leftover = _put(top / "images/blobs/sha256" / (".x" + ".airgap-delta-tmp"), b"half written")
    assert main(["plan", "complete-delta", "--root", str(root), "--bundle", str(top)]) == 0
    assert "3 to copy in" in capsys.readouterr().out
    assert main(["complete-delta", "--root", str(root), "--bundle", str(top)]) == 0
    out = capsys.readouterr().out
    assert "completed: 3 item(s) copied in" in out and "matches SHA256SUMS" in out, out
    assert not leftover.exists()
    for rel, data in omitted.items():
        assert (top / rel).read_bytes() == data
    assert main(["complete-delta", "--root", str(root), "--bundle", str(top)]) == 0
    assert "completed: 0 item(s) copied in from this site, 3 already in place" in capsys.readouterr().out


def test_a_whole_bundle_has_nothing_to_complete(tmp_path, capsys):
    write_bundle(tmp_path)
    subprocess.run(["tar", "-xzf", str(tmp_path / f"{TOP}.tar.gz"), "-C", str(tmp_path)], check=True)
    assert main(["complete-delta", "--root", str(tmp_path / "site"), "--bundle", str(tmp_path / TOP)]) == 0
    assert "not a delta" in capsys.readouterr().out


def test_a_delta_section_omitting_the_installer_is_refused_by_the_bundle_check(tmp_path, capsys):
    from tests.bundle.test_conformance import delta_cases

    top, omitted = _delta(tmp_path)
    case = next(c for c in delta_cases(omitted) if "install.py removed" in c.name)
    case.damage(top, tmp_path)
    root = _site(tmp_path, omitted)
    assert main(["complete-delta", "--root", str(root), "--bundle", str(top)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the bundle in ") and "install.py: bundle.json's delta section omits it" in err, err
    assert err.count("\n") == 1
