"""Check a bundle before trusting it: every file matches SHA256SUMS, nothing else is in it, nothing escapes it.

Works on the tarball as it arrives over the air gap (read once as a stream, hashing each member while reading,
never extracting: a hostile tarball cannot write anything and a 40 GiB one needs no disk and constant memory)
and on an unpacked directory. All problems are collected, not just the first, so the operator sees the whole
extent of a damaged copy in one run. With a key, SHA256SUMS.asc must be a valid signature by that key.

The pieces: report.py (the verdict), tarstream.py (bounded sequential reading), tarscan.py, dirscan.py,
rules.py (installer/bundle_rules.py, shared with install.py), gpgverify.py; signing at build time is sign.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .dirscan import find_top_dir, scan_dir
from .gpgverify import SignatureBad, check_signature
from .report import BundleNotFound, Report, VerifyError
from .sums import SIG, SUMS
from .tarscan import check_against_sums, scan_tar
from .tarstream import is_tar_file


def verify(path: str | os.PathLike[str], key: str | os.PathLike[str] | None = None,
           progress: Callable[[int], None] | None = None) -> Report:
    """Check a bundle tarball (.tar/.tar.gz/.tar.xz, detected by content) or unpacked directory.

    Returns a Report listing every problem; raises VerifyError only when the bundle cannot be examined at all
    (BundleNotFound when the path does not exist or cannot be read).
    `progress` receives byte counts (compressed bytes for a tarball, file bytes for a directory).
    """
    path = Path(path)
    report = Report(bundle=path)
    if path.is_dir():
        if not os.access(path, os.R_OK | os.X_OK):
            raise BundleNotFound(f"cannot read the directory {path}: permission denied. Run as a user who can "
                                 "read the whole bundle.")
        scan = scan_dir(find_top_dir(path), report, progress)
        sums, sig = scan.sums, scan.sig
    elif path.is_file():
        try:
            tar = is_tar_file(path)
        except OSError as e:
            raise BundleNotFound(f"cannot read {path}: {e.strerror}. Run as a user who can read it.") from None
        if not tar:
            raise VerifyError(f"{path} is neither a directory nor a tar archive (.tar, .tar.gz or .tar.xz). Give "
                              "the bundle tarball as written by `bundler build`, or its unpacked directory.")
        tscan = scan_tar(path, report, progress)
        if tscan.unreadable:
            return report
        check_against_sums(tscan, report)
        sums, sig = tscan.sums, tscan.sig
    elif path.exists():
        raise VerifyError(f"{path} is neither a directory nor a regular file (a device, pipe or socket). Give the "
                          "bundle tarball or its unpacked directory.")
    else:
        raise BundleNotFound(f"{path} does not exist. Give the bundle tarball or its unpacked directory.")
    if key is not None:
        if sig is None:
            report.add(SIG, f"missing, but a key was given: the bundle is not signed (or the signature was removed). "
                            f"Use the signed bundle, or leave out --key to check only {SUMS}")
        elif sums is not None:
            try:
                report.signed_by = check_signature(sums, sig, Path(key))
            except SignatureBad as e:
                report.add(SIG, f"not a valid signature of {SUMS} by the key in {key} ({e}): the bundle was "
                                "changed after signing, or signed with another key")
    return report
