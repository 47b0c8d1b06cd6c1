"""Throwaway GPG keys (real gpg, fast ed25519, no passphrase) shared by the signing tests."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Key:
    home: Path  # GNUPGHOME holding the secret key
    fpr: str
    public: Path  # armored public key file


def _make_key(uid: str, out: Path) -> Key:
    # Short home path: gpg-agent's socket path must fit in 108 bytes.
    home = Path(tempfile.mkdtemp(prefix="tgpg-", dir="/tmp"))
    home.chmod(0o700)
    gpg = ["gpg", "--batch", "--homedir", str(home)]
    subprocess.run([*gpg, "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never"],
                   check=True, capture_output=True)
    colons = subprocess.run([*gpg, "--with-colons", "--list-secret-keys"], check=True, capture_output=True,
                            text=True).stdout
    fpr = next(line.split(":")[9] for line in colons.splitlines() if line.startswith("fpr:"))
    public = out / f"{fpr[-8:]}.asc"
    public.write_bytes(subprocess.run([*gpg, "--armor", "--export", fpr], check=True, capture_output=True).stdout)
    return Key(home, fpr, public)


@pytest.fixture(scope="session")
def gpg_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Key, Key]]:
    """(signer, stranger): two independent keys in two homes."""
    if not shutil.which("gpg"):
        pytest.skip("gpg is not installed (apt-get install gnupg)")
    out = tmp_path_factory.mktemp("keys")
    keys = (_make_key("bundle signer <signer@example.org>", out), _make_key("stranger <s@example.org>", out))
    yield keys
    for k in keys:
        subprocess.run(["gpgconf", "--homedir", str(k.home), "--kill", "all"], capture_output=True, check=False)
        shutil.rmtree(k.home, ignore_errors=True)
