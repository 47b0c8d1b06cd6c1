"""inspect: the bill of materials from the front of the tar, without reading the rest."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bundler.bundle.inspect import InspectError, format_inspect, inspect

from .bundles import TOP, content, write_bundle


def check_fields(s: dict) -> None:
    bom = json.loads(content()["bundle.json"])
    assert (s["name"], s["version"], s["kubernetes"], s["runtime"], s["cni"]) == \
        ("k8s-1.30-el9", "1.0.0", "1.30.4", "containerd", "calico")
    assert s["target"] == {"os": "el9", "arch": "x86_64"}
    assert s["packages"]["count"] == 3 and s["packages"]["size"] == sum(p["size"] for p in bom["packages"])
    want = sorted((p["name"], p["version"], p["release"], p["arch"], p["size"], p["sha256"]) for p in bom["packages"])
    assert [(p["name"], p["version"], p["release"], p["arch"], p["size"], p["sha256"])
            for p in s["packages"]["list"]] == want
    assert s["images"]["count"] == 2 and s["images"]["size"] == sum(i["size"] for i in bom["images"])
    assert [(i["ref"], i["digest"]) for i in s["images"]["list"]] == [(i["ref"], i["digest"]) for i in bom["images"]]
    assert s["files"]["count"] == 1 and s["files"]["list"][0]["path"] == "files/registry"
    assert s["size"] == s["packages"]["size"] + s["images"]["size"] + s["files"]["size"]


def test_inspect_tarball_fields_and_human_output(tmp_path: Path) -> None:
    s = inspect(write_bundle(tmp_path))
    check_fields(s)
    text = format_inspect(s)
    assert "k8s-1.30-el9 1.0.0" in text and "el9/x86_64" in text and "kubernetes  1.30.4" in text
    assert "registry.k8s.io/pause:3.9" in text and s["images"]["list"][0]["digest"] in text
    # every package on its own line: name, version-release, arch, size, sha256, in aligned columns
    rows = [line for line in text.splitlines() if any(line.split()[:1] == [p["name"]] for p in s["packages"]["list"])]
    assert len(rows) == 3 and all(p["sha256"] in text for p in s["packages"]["list"])
    assert len({row.index(p["sha256"]) for row, p in zip(rows, s["packages"]["list"])}) == 1


def test_inspect_stops_at_bundle_json(tmp_path: Path) -> None:
    """Only the start of the tarball is read: a copy whose tail is garbage still inspects."""
    files = content()
    files["files/big"] = bytes(range(256)) * 40_000  # pushes the tail far from bundle.json
    tarball = write_bundle(tmp_path, files, fmt="")
    data = bytearray(tarball.read_bytes())
    data[len(data) // 2:] = b"\xff" * (len(data) - len(data) // 2)
    tarball.write_bytes(bytes(data))
    check_fields(inspect(tarball))


def test_inspect_finds_bundle_json_anywhere_and_in_directories(tmp_path: Path) -> None:
    tarball = write_bundle(tmp_path, bundle_json_last=True, fmt="xz")
    check_fields(inspect(tarball))
    (tmp_path / "u").mkdir()
    subprocess.run(["tar", "-xf", str(tarball), "-C", str(tmp_path / "u")], check=True)
    check_fields(inspect(tmp_path / "u" / TOP))
    check_fields(inspect(tmp_path / "u"))


def test_inspect_without_bundle_json_is_an_operator_error(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(InspectError, match="has no bundle.json"):
        inspect(tmp_path / "d")
    (tmp_path / "d" / "bundle.json").write_text("{broken")
    with pytest.raises(InspectError, match="not valid JSON"):
        inspect(tmp_path / "d")
