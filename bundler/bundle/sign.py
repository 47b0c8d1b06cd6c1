"""Sign SHA256SUMS at the end of a build (`bundler build --sign KEYID`)."""

from __future__ import annotations

import os
import shutil
import subprocess

from ..errors import BundlerError
from .sums import SUMS


def sign_bytes(data: bytes, keyid: str, gnupghome: str | os.PathLike[str] | None = None) -> bytes:
    """Detached ASCII-armored signature of `data` by `keyid`; the writer passes this as its `sign` callback
    (SHA256SUMS is produced while streaming the tarball, so it is signed from memory, never from a file)."""
    gpg = shutil.which("gpg") or shutil.which("gpg2")
    if not gpg:
        raise BundlerError("gpg is not installed, so the bundle cannot be signed. Install gnupg, or build without "
                           "--sign.")
    env = dict(os.environ)
    if gnupghome is not None:
        env["GNUPGHOME"] = str(gnupghome)
    p = subprocess.run([gpg, "--batch", "--yes", "--armor", "--detach-sign", "--local-user", keyid,
                        "--output", "-"], input=data, capture_output=True, env=env, check=False)
    if p.returncode != 0 or b"BEGIN PGP SIGNATURE" not in p.stdout:
        err = p.stderr.decode(errors="replace").strip().replace("\n", " ")
        raise BundlerError(f"gpg could not sign {SUMS} with the key {keyid!r}: {err}. Check that `gpg "
                           f"--list-secret-keys {keyid}` shows the key (set GNUPGHOME if it lives elsewhere) and "
                           "that gpg-agent can unlock it without a prompt (batch mode).")
    return p.stdout
