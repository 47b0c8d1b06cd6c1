"""split/join: parts fit the medium, the printed coreutils command rebuilds a tarball that verifies."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bundler.bundle.split import SplitError, join, parse_size, split
from bundler.bundle.verify import verify

from .bundles import content, write_bundle


def big_bundle(tmp_path: Path) -> Path:
    """~3.5 MiB of incompressible payload, so 1 MiB parts give 4 parts."""
    files = content()
    files["files/kubelet"] = os.urandom(3_500_000)
    return write_bundle(tmp_path, files)


@pytest.mark.parametrize(("text", "expected"), [
    ("4G", 4 << 30), ("700M", 700 << 20), ("1.5G", 3 << 29), ("4095MiB", 4095 << 20), ("4GB", 4 * 10**9),
    ("1048576", 1 << 20), ("2k", 2048), (" 10 M ", 10 << 20),
])
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "G", "4Q", "-1M", "4 G B", "1e9"])
def test_parse_size_rejects_nonsense(text: str) -> None:
    with pytest.raises(SplitError, match="not understood"):
        parse_size(text)


def test_size_below_one_mib_is_refused(tmp_path: Path) -> None:
    tarball = write_bundle(tmp_path)
    with pytest.raises(SplitError, match="below the minimum of 1 MiB"):
        split(tarball, "1023K")
    assert sorted(p.name for p in tmp_path.iterdir()) == [tarball.name]


def test_split_then_join_with_the_printed_command_then_verify(tmp_path: Path) -> None:
    tarball = big_bundle(tmp_path)
    index = split(tarball, "1M")
    data = json.loads(index.read_text())
    names = [p["name"] for p in data["parts"]]
    assert names == [f"{tarball.name}.part{i:03d}" for i in range(1, 5)]
    assert all((tmp_path / n).stat().st_size <= 1 << 20 for n in names)
    assert sum(p["size"] for p in data["parts"]) == tarball.stat().st_size == data["tarball"]["size"]

    # The other side of the air gap: only the parts and the small files, no original, no bundler.
    far = tmp_path / "far"
    far.mkdir()
    for n in [*names, f"{tarball.name}.parts.sha256", f"{tarball.name}.sha256", index.name]:
        shutil.copy(tmp_path / n, far / n)
    p = subprocess.run(["sh", "-c", data["join"]], cwd=far, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert f"{tarball.name}: OK" in p.stdout
    assert (far / tarball.name).read_bytes() == tarball.read_bytes()
    assert verify(far / tarball.name).ok


def test_printed_command_refuses_a_damaged_part(tmp_path: Path) -> None:
    tarball = big_bundle(tmp_path)
    data = json.loads(split(tarball, "1M").read_text())
    part = tmp_path / data["parts"][2]["name"]
    raw = bytearray(part.read_bytes())
    raw[100] ^= 0xFF
    part.write_bytes(bytes(raw))
    tarball.unlink()
    p = subprocess.run(["sh", "-c", data["join"]], cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode != 0
    assert f"{part.name}: FAILED" in p.stdout
    assert not tarball.exists()  # the && chain stopped before cat


def test_python_join_names_damaged_and_missing_parts(tmp_path: Path) -> None:
    tarball = big_bundle(tmp_path)
    index = split(tarball, "1M")
    original = tarball.read_bytes()
    tarball.unlink()
    assert join(index).read_bytes() == original
    tarball.unlink()
    (tmp_path / f"{tarball.name}.part002").write_bytes(b"truncated")
    (tmp_path / f"{tarball.name}.part004").unlink()
    with pytest.raises(SplitError) as e:
        join(index)
    assert f"{tarball.name}.part002 is damaged" in str(e.value)
    assert f"{tarball.name}.part004 is missing" in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_resplit_removes_stale_parts_the_glob_would_pick_up(tmp_path: Path) -> None:
    tarball = big_bundle(tmp_path)
    split(tarball, "1M")
    assert (tmp_path / f"{tarball.name}.part004").exists()
    data = json.loads(split(tarball, "2M").read_text())
    assert sorted(p.name for p in tmp_path.glob(f"{tarball.name}.part[0-9]*")) == \
        [f"{tarball.name}.part001", f"{tarball.name}.part002"]
    tarball.rename(tmp_path / "original")
    assert subprocess.run(["sh", "-c", data["join"]], cwd=tmp_path, capture_output=True).returncode == 0
    assert verify(tarball).ok


def test_small_tarball_gives_one_part_and_no_temp_files(tmp_path: Path) -> None:
    tarball = write_bundle(tmp_path)
    index = split(tarball, "4G")
    assert [p["name"] for p in json.loads(index.read_text())["parts"]] == [f"{tarball.name}.part001"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
