"""Contracts across components: the real writer's tarball verifies (here and in the installer), memory stays flat."""

from __future__ import annotations

import subprocess
import tarfile
import tracemalloc
from pathlib import Path

from bundler.bundle.sign import sign_bytes
from bundler.bundle.tarball import write_tarball
from bundler.bundle.verify import verify
from installer import verify_bundle

from .bundles import TOP, content, write_bundle
from .conftest import Key


def test_writer_output_signed_verifies_here_and_in_the_installer(tmp_path: Path, gpg_keys: tuple[Key, Key]) -> None:
    signer, stranger = gpg_keys
    tree = tmp_path / "tree"
    for rel, data in content().items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(data)
    dest = tmp_path / f"{TOP}.tar.gz"
    write_tarball(tree, dest, top=TOP, sign=lambda b: sign_bytes(b, signer.fpr, signer.home))
    r = verify(dest, key=signer.public)
    assert r.ok and r.signed_by == signer.fpr, r.format()
    assert not verify(dest, key=stranger.public).ok
    out = tmp_path / "unpacked"
    out.mkdir()
    subprocess.run(["tar", "-xzf", str(dest), "-C", str(out)], check=True)
    assert verify(out / TOP, key=signer.public).ok
    assert verify_bundle.verify(str(out / TOP), key=str(signer.public)) == len(content())
    # coreutils agrees with our SHA256SUMS
    assert subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=out / TOP).returncode == 0


def test_memory_stays_flat_for_a_large_member(tmp_path: Path) -> None:
    files = content()
    big = tmp_path / "big"
    big.write_bytes(b"\0" * (64 << 20))
    tarball = write_bundle(tmp_path, files, also_listed={"files/big": b"\0" * (64 << 20)},
                           extra=lambda t: t.add(str(big), f"{TOP}/files/big"))
    big.unlink()
    assert tarball.stat().st_size < 1 << 20  # zeros compress: the 64 MiB exist only inside the stream
    tracemalloc.start()
    try:
        r = verify(tarball)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert r.ok, r.format()
    assert r.bytes_hashed > 64 << 20
    assert peak < 16 << 20, f"peak {peak} bytes while verifying a 64 MiB member"


def test_tarfile_members_are_never_extracted(tmp_path: Path) -> None:
    tarball = write_bundle(tmp_path)
    with tarfile.open(tarball) as t:
        names = t.getnames()
    verify(tarball)
    assert not any((tmp_path / n).exists() for n in names)
