"""Check SHA256SUMS.asc against the key given on the command line, in a throwaway GnuPG home."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .report import VerifyError
from .sums import SIG, SUMS


def _gpg(home: str, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    gpg = shutil.which("gpg") or shutil.which("gpg2")
    if not gpg:
        raise VerifyError("gpg is not installed, so the signature cannot be checked. Install it (`apt-get install "
                          "gnupg` / `yum install gnupg2`) or leave out --key to check only SHA256SUMS.")
    return subprocess.run([gpg, "--batch", "--no-tty", "--homedir", home, *args], input=stdin,
                          capture_output=True, check=False)


def _throwaway_home() -> str:
    # Short path: gpg-agent sockets live in the home and unix socket paths are limited to ~108 bytes.
    return tempfile.mkdtemp(prefix="bgpg-", dir="/tmp" if os.path.isdir("/tmp") else None)


def _cleanup_home(home: str) -> None:
    if any(Path(home).glob("S.*")):
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], capture_output=True, check=False)
    shutil.rmtree(home, ignore_errors=True)


class SignatureBad(Exception):
    """The signature does not verify; becomes a Problem on SHA256SUMS.asc, not an error."""


def check_signature(sums: bytes, sig: bytes, key: Path) -> str:
    """Return the signing key's fingerprint if `sig` is a valid signature of `sums` by a key in `key`.

    The key is imported into a throwaway GNUPGHOME so the operator's keyring (and its trust settings) can
    neither help nor hurt: only the key given on the command line counts. Raises VerifyError otherwise.
    """
    key = Path(key)
    if not key.is_file():
        raise VerifyError(f"the key file {key} does not exist. Give the armored public key the bundle was signed "
                          "with (`gpg --armor --export KEYID > key.asc` on the build machine).")
    home = _throwaway_home()
    try:
        imp = _gpg(home, "--status-fd", "1", "--import", str(key))
        listing = _gpg(home, "--with-colons", "--list-keys").stdout.decode(errors="replace").splitlines()
        wanted = {ln.split(":")[9].upper() for ln in listing if ln.startswith("fpr:") and ln.split(":")[9]}
        if imp.returncode != 0 or not wanted:
            raise VerifyError(f"cannot import the public key {key}: {imp.stderr.decode(errors='replace').strip()}. "
                              "Give an ASCII-armored public key file (`gpg --armor --export KEYID`).")
        sums_path, sig_path = os.path.join(home, SUMS), os.path.join(home, SIG)
        Path(sums_path).write_bytes(sums)
        Path(sig_path).write_bytes(sig)
        p = _gpg(home, "--status-fd", "1", "--trust-model", "always", "--verify", sig_path, sums_path)
        status = p.stdout.decode(errors="replace").splitlines()
        for line in status:
            f = line.split()
            if len(f) >= 3 and f[0] == "[GNUPG:]" and f[1] == "VALIDSIG":
                signer = f[2].upper()
                primary = f[11].upper() if len(f) > 11 else signer
                if signer in wanted or primary in wanted:
                    return primary
        bad = [ln.split(None, 1)[1] for ln in status if ln.split()[1:2] and ln.split()[1] in
               ("BADSIG", "ERRSIG", "EXPKEYSIG", "REVKEYSIG", "NO_PUBKEY", "NODATA")]
        why = "; ".join(bad) or p.stderr.decode(errors="replace").strip() or "no valid signature"
        raise SignatureBad(why)
    finally:
        _cleanup_home(home)
