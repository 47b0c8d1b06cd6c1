"""tar.gz with mixed deflate blocks: compressed payloads stored (no 32 s/GB squeeze), one ordinary gzip member."""

from __future__ import annotations

import gzip
import hashlib
import subprocess
import zlib
from pathlib import Path

import pytest

from bundler.bundle.sums import DigestMismatch
from bundler.bundle.tarball import STORED, MixedGzip, _Out, member_level, write_tarball


def _tree(root: Path) -> Path:
    rnd = hashlib.shake_256(b"seed").digest(300_000)
    (root / "images/blobs/sha256").mkdir(parents=True)
    (root / "images/blobs/sha256/aa").write_bytes(b"\x1f\x8b\x08\x00" + rnd)  # a gzip layer
    (root / "repo/Packages").mkdir(parents=True)
    (root / "repo/Packages/x.rpm").write_bytes(b"\xed\xab\xee\xdb" + rnd[:100_000])
    (root / "files").mkdir()
    (root / "files/helm").write_bytes(b"ELF symbol table\n" * 80_000)  # large, compressible: level 1
    (root / "files/helm").chmod(0o755)
    (root / "bundle.json").write_text('{"a": 1}\n' * 1000)
    (root / "empty").write_bytes(b"")
    return root


def test_levels_follow_content_only(tmp_path: Path) -> None:
    t = _tree(tmp_path / "t")
    assert member_level(t / "images/blobs/sha256/aa", 300_004, 6) == STORED
    assert member_level(t / "repo/Packages/x.rpm", 100_004, 6) == STORED
    assert member_level(t / "files/helm", (t / "files/helm").stat().st_size, 6) == 1
    assert member_level(t / "bundle.json", 9000, 6) == 6


def test_one_gzip_member_for_gzip_tar_and_python_and_reproducible(tmp_path: Path) -> None:
    t = _tree(tmp_path / "t")
    a, b, plain = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz", tmp_path / "p.tar"
    digests: list[str] = []
    sums = write_tarball(t, a, top="top", on_written=digests.append)
    write_tarball(t, b, top="top")
    write_tarball(t, plain, top="top", fmt="tar", on_written=digests.append)
    # the tarball's own sha256, computed while writing (no second read for its .sha256)
    assert digests == [hashlib.sha256(a.read_bytes()).hexdigest(), hashlib.sha256(plain.read_bytes()).hexdigest()]
    assert a.read_bytes() == b.read_bytes()  # reproducible
    assert gzip.decompress(a.read_bytes()) == plain.read_bytes()  # exactly the plain tar, every member
    d = zlib.decompressobj(31)
    assert d.decompress(a.read_bytes()) == plain.read_bytes() and d.eof and d.unused_data == b""  # ONE member
    import tarfile

    with tarfile.open(plain) as tf:
        names = tf.getnames()
    with tarfile.open(a, "r|gz") as tf:  # tarfile's own stream reader handles one gzip member only: fine
        assert [m.name for m in tf] == names
    assert subprocess.run(["gzip", "-t", str(a)]).returncode == 0
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["tar", "-xzf", str(a), "-C", str(out)], check=True)
    assert subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=out / "top").returncode == 0
    assert sums["images/blobs/sha256/aa"] == hashlib.sha256((t / "images/blobs/sha256/aa").read_bytes()).hexdigest()
    # the stored layer costs 5 bytes per 64 KiB, not a failed squeeze; the text still shrinks
    assert a.stat().st_size < 300_004 + 100_004 + 200_000


def test_stored_member_framing_is_valid_deflate_at_block_edges(tmp_path: Path) -> None:
    data = hashlib.shake_256(b"edge").digest(3 * 0xFFFF + 7)
    p = tmp_path / "g.gz"
    with open(p, "wb", buffering=0) as f:
        g = MixedGzip(_Out(f.fileno()), STORED)
        for piece in (data[:1], data[1:0xFFFF], data[0xFFFF:2 * 0xFFFF + 3], data[2 * 0xFFFF + 3:]):
            g.write(piece)
        g.set_level(6)
        g.write(b"tail" * 100)
        g.close()
    assert gzip.decompress(p.read_bytes()) == data + b"tail" * 100
    d = zlib.decompressobj(31)
    assert d.decompress(p.read_bytes()) == data + b"tail" * 100 and d.eof and d.unused_data == b""


def test_empty_stream_is_a_valid_gzip(tmp_path: Path) -> None:
    p = tmp_path / "e.gz"
    with open(p, "wb", buffering=0) as f:
        MixedGzip(_Out(f.fileno())).close()
    assert gzip.decompress(p.read_bytes()) == b""


@pytest.mark.parametrize("fmt", ["tar.gz", "tar"])
def test_a_member_that_differs_from_expected_is_named_with_every_other(tmp_path: Path, fmt: str) -> None:
    t = _tree(tmp_path / "t")
    good = hashlib.sha256((t / "files/helm").read_bytes()).hexdigest()
    expected = {"files/helm": good, "bundle.json": "0" * 64, "repo/Packages/x.rpm": "1" * 64, "gone": "2" * 64}
    with pytest.raises(DigestMismatch) as e:
        write_tarball(t, tmp_path / "o", top="top", fmt=fmt, expected=expected)
    assert set(e.value.bad) == {"bundle.json", "repo/Packages/x.rpm", "gone"}
