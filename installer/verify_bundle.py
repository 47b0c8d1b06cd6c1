"""Check the unpacked bundle before anything touches a host: the rules of installer/bundle_rules.py (the same
code `bundler verify` runs), then, with --key, the GPG signature of SHA256SUMS."""

import os
import subprocess
import tempfile

from installer import bundle_rules as rules
from installer.errors import InstallerError

SUMS = rules.SUMS
SIG = rules.SIG


def verify(root, key=None, progress=None):
    """Return the number of files checked; raise one InstallerError naming every bad path otherwise.

    `progress(n)` receives the bytes hashed. Unlisted files are refused from the listing, never read.
    """
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise InstallerError("the bundle directory %s does not exist" % root,
                             hint="Run install.py from the unpacked bundle directory, or pass --bundle DIR")
    scan, problems, checked, _ = rules.check_tree(root, progress)
    if key:
        problems.extend(signature_problems(scan, key))
    if problems:
        n = len(problems)
        raise InstallerError(
            "the bundle in %s failed its check against %s (%d problem%s): %s"
            % (root, SUMS, n, "" if n == 1 else "s", "; ".join("%s: %s" % (p, what.rstrip("."))
                                                            for p, what in problems)),
            hint="Nothing was changed on any host. Do not install from this copy: copy the bundle tarball again "
                 "from the original, check it against the .sha256 file published with it (`sha256sum -c "
                 "NAME.tar.gz.sha256`), unpack it into an empty directory and run install.py from there")
    return checked


def signature_problems(scan, key):
    """R8: [] if SHA256SUMS.asc is a valid signature of the SHA256SUMS just checked, by the key in `key`."""
    if not os.path.isfile(key):
        raise InstallerError("the key file %s does not exist" % key,
                             hint="Give the armored public key the bundle was signed with, or leave out --key")
    if scan.sig is None:
        return [(SIG, "missing, but --key was given: the bundle is not signed (or the signature was removed)")]
    if scan.sums is None:
        return []  # already named by the checksum rules
    home = tempfile.mkdtemp(prefix="airgap-gpg-")
    try:
        # the bytes that were checked, not the files again: nothing can swap them in between
        sums_path, sig_path = os.path.join(home, SUMS), os.path.join(home, SIG)
        for path, data in ((sums_path, scan.sums), (sig_path, scan.sig)):
            with open(path, "wb") as f:
                f.write(data)
        cmd = ["gpg", "--batch", "--homedir", home, "--import", key]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        _, err = p.communicate()
        if p.returncode != 0:
            raise InstallerError("cannot import the key %s" % key, command=" ".join(cmd), stderr=err)
        cmd = ["gpg", "--batch", "--homedir", home, "--trust-model", "always", "--verify", sig_path, sums_path]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        _, err = p.communicate()
        if p.returncode != 0:
            tail = " | ".join(ln.strip() for ln in err.strip().splitlines()[-2:])
            return [(SIG, "does not verify with the key %s (%s): the bundle was changed after signing, or signed "
                          "with another key" % (key, tail))]
        return []
    except OSError as e:
        raise InstallerError("cannot run gpg to check the signature: %s" % e,
                             hint="Install gnupg2 (it is on the OS media) or leave out --key") from None
    finally:
        if any(n.startswith("S.") for n in os.listdir(home)):  # an agent this check started
            subprocess.call(["gpgconf", "--homedir", home, "--kill", "all"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
        subprocess.call(["rm", "-rf", home])
