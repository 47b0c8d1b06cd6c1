"""Check a `--sign KEYID` before a build downloads anything, without creating a GnuPG home as a side effect."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ..errors import BundlerError


def gnupg_home() -> Path:
    """Where gpg looks for keys: $GNUPGHOME, else ~/.gnupg."""
    env = os.environ.get("GNUPGHOME")
    return Path(env) if env else Path.home() / ".gnupg"


def check_sign_key(keyid: str) -> None:
    """Fail now, with the fix, when KEYID is not a secret key gpg can use (the signing happens last).

    gpg creates its home directory on first use, so an absent home is refused before gpg is run at all.
    """
    gpg = shutil.which("gpg") or shutil.which("gpg2")
    if not gpg:
        raise BundlerError("gpg is not installed, so the bundle cannot be signed. Install gnupg, or build without "
                           "--sign.")
    home = gnupg_home()
    if not home.is_dir():
        raise BundlerError(f"--sign {keyid}: there is no GnuPG home at {home}, so there is no secret key to sign "
                           "with. Set GNUPGHOME to the directory that holds the key, or build without --sign.")
    p = subprocess.run([gpg, "--batch", "--no-tty", "--homedir", str(home), "--with-colons", "--list-secret-keys",
                        "--", keyid], capture_output=True, check=False, timeout=60)
    if p.returncode != 0 or not any(line.startswith(b"sec:") for line in p.stdout.splitlines()):
        raise BundlerError(f"--sign {keyid}: gpg has no secret key {keyid!r} in {home}. `gpg --list-secret-keys` "
                           "shows the keys there; set GNUPGHOME if the key lives elsewhere, or build without --sign.")
