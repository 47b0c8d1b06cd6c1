"""Signatures: real gpg keys in throwaway homes; only the key given counts."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from bundler.bundle.report import VerifyError
from bundler.bundle.sign import sign_bytes
from bundler.bundle.sums import format_sums
from bundler.bundle.verify import verify
from bundler.errors import BundlerError

from .bundles import TOP, write_bundle
from .conftest import Key


def signed_bundle(tmp_path: Path, key: Key) -> Path:
    return write_bundle(tmp_path, sig=lambda data: sign_bytes(data, key.fpr, key.home))


def test_signed_bundle_verifies_with_the_right_key(tmp_path: Path, gpg_keys: tuple[Key, Key]) -> None:
    signer, _ = gpg_keys
    r = verify(signed_bundle(tmp_path, signer), key=signer.public)
    assert r.ok, r.format()
    assert r.signed_by == signer.fpr
    assert signer.fpr in r.format()


def test_signed_bundle_fails_with_another_key(tmp_path: Path, gpg_keys: tuple[Key, Key]) -> None:
    signer, stranger = gpg_keys
    r = verify(signed_bundle(tmp_path, signer), key=stranger.public)
    assert [p.path for p in r.problems] == ["SHA256SUMS.asc"]
    assert "not a valid signature" in r.problems[0].problem
    assert r.exit_code == 1


def test_signature_checked_on_the_unpacked_directory_too(tmp_path: Path, gpg_keys: tuple[Key, Key]) -> None:
    signer, stranger = gpg_keys
    out = tmp_path / "u"
    out.mkdir()
    subprocess.run(["tar", "-xzf", str(signed_bundle(tmp_path, signer)), "-C", str(out)], check=True)
    assert verify(out / TOP, key=signer.public).ok
    assert not verify(out / TOP, key=stranger.public).ok


def test_sums_changed_after_signing_fails(tmp_path: Path, gpg_keys: tuple[Key, Key]) -> None:
    """An attacker who swaps a file and regenerates SHA256SUMS cannot regenerate the signature."""
    signer, _ = gpg_keys
    out = tmp_path / "u"
    out.mkdir()
    subprocess.run(["tar", "-xzf", str(signed_bundle(tmp_path, signer)), "-C", str(out)], check=True)
    top = out / TOP
    (top / "install.py").write_text("#!/bin/sh\nevil\n")
    sums = (top / "SHA256SUMS").read_text().splitlines()
    new = hashlib.sha256((top / "install.py").read_bytes()).hexdigest()
    (top / "SHA256SUMS").write_text("\n".join(new + "  install.py" if ln.endswith("  install.py") else ln
                                              for ln in sums) + "\n")
    assert verify(top).ok  # without a key the forgery is consistent...
    r = verify(top, key=signer.public)  # ...with the key it is caught
    assert [p.path for p in r.problems] == ["SHA256SUMS.asc"]


def test_missing_signature_with_a_key_is_an_error(tmp_path: Path, gpg_keys: tuple[Key, Key]) -> None:
    r = verify(write_bundle(tmp_path), key=gpg_keys[0].public)
    assert [p.path for p in r.problems] == ["SHA256SUMS.asc"]
    assert "not signed" in r.problems[0].problem


def test_missing_key_file_is_an_operator_error(tmp_path: Path, gpg_keys: tuple[Key, Key]) -> None:
    with pytest.raises(VerifyError, match="does not exist"):
        verify(signed_bundle(tmp_path, gpg_keys[0]), key=tmp_path / "no-such-key.asc")


def test_sign_makes_a_detached_armored_signature_plain_gpg_accepts(tmp_path: Path,
                                                                    gpg_keys: tuple[Key, Key]) -> None:
    signer, _ = gpg_keys
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(format_sums({"bundle.json": "a" * 64}))
    asc = tmp_path / "SHA256SUMS.asc"
    asc.write_bytes(sign_bytes(sums.read_bytes(), signer.fpr, gnupghome=signer.home))
    assert asc.read_text().startswith("-----BEGIN PGP SIGNATURE-----")
    subprocess.run(["gpg", "--batch", "--homedir", str(signer.home), "--verify", str(asc), str(sums)],
                   check=True, capture_output=True)


def test_sign_with_an_unknown_key_explains(gpg_keys: tuple[Key, Key]) -> None:
    with pytest.raises(BundlerError, match="could not sign .* NOSUCHKEY"):
        sign_bytes(b"", "NOSUCHKEY", gnupghome=gpg_keys[0].home)
