"""Check the unpacked bundle against SHA256SUMS (and its GPG signature) before touching any host."""

import hashlib
import os
import subprocess
import tempfile

from installer.errors import InstallerError

SUMS = "SHA256SUMS"
SIG = "SHA256SUMS.asc"


def sha256_file(path, bufsize=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(bufsize)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


def parse_sums(text, path=SUMS):
    entries = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(None, 1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise InstallerError("%s line %d is not '<sha256>  <path>'" % (path, n),
                                 hint="The bundle is damaged: unpack the tarball again")
        digest, name = parts[0].lower(), parts[1].strip()
        if name.startswith("*"):
            name = name[1:]
        if name.startswith("/") or ".." in name.split("/"):
            raise InstallerError("%s line %d names %r, outside the bundle" % (path, n, name),
                                 hint="Do not use this bundle: it may have been tampered with")
        entries.append((digest, name))
    return entries


def verify(root, key=None, progress=None):
    """Raise InstallerError naming the first bad file; return the number of files checked."""
    sums_path = os.path.join(root, SUMS)
    if not os.path.exists(sums_path):
        raise InstallerError("the bundle has no %s (looked in %s)" % (SUMS, root),
                             hint="Run install.py from the unpacked bundle directory")
    if key:
        verify_signature(root, key)
    with open(sums_path) as f:
        entries = parse_sums(f.read())
    bad, missing = [], []
    listed = set()
    for i, (digest, name) in enumerate(entries):
        listed.add(name)
        p = os.path.join(root, name)
        if progress and i % 200 == 0:
            progress(i, len(entries))
        if not os.path.isfile(p):
            missing.append(name)
        elif sha256_file(p) != digest:
            bad.append(name)
    if bad or missing:
        what = []
        if bad:
            what.append("changed: %s" % ", ".join(bad[:5]) + (" and %d more" % (len(bad) - 5) if len(bad) > 5 else ""))
        if missing:
            what.append("missing: %s" % ", ".join(missing[:5]) +
                        (" and %d more" % (len(missing) - 5) if len(missing) > 5 else ""))
        raise InstallerError("the bundle in %s does not match its %s (%s)" % (root, SUMS, "; ".join(what)),
                             hint="Nothing was changed on any host. Copy the bundle tarball again and "
                                  "check it against the checksum published with it")
    for required in ("bundle.json",):
        if required not in listed:
            raise InstallerError("%s does not cover %s" % (SUMS, required),
                                 hint="The bundle is damaged or was not written by bundler build")
    return len(entries)


def verify_signature(root, key):
    sig = os.path.join(root, SIG)
    if not os.path.exists(sig):
        raise InstallerError("--key was given but the bundle has no %s" % SIG,
                             hint="Use a signed bundle, or leave out --key to check only SHA256SUMS")
    if not os.path.exists(key):
        raise InstallerError("the key file %s does not exist" % key)
    home = tempfile.mkdtemp(prefix="airgap-gpg-")
    try:
        cmd = ["gpg", "--batch", "--homedir", home, "--import", key]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        _, err = p.communicate()
        if p.returncode != 0:
            raise InstallerError("cannot import the key %s" % key, command=" ".join(cmd), stderr=err)
        cmd = ["gpg", "--batch", "--homedir", home, "--trust-model", "always", "--verify", sig,
               os.path.join(root, SUMS)]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        _, err = p.communicate()
        if p.returncode != 0:
            raise InstallerError("the signature %s does not verify with the key %s" % (SIG, key),
                                 command=" ".join(cmd), stderr=err,
                                 hint="Nothing was changed on any host. Do not use this bundle")
    except OSError as e:
        raise InstallerError("cannot run gpg to check the signature: %s" % e,
                             hint="Install gnupg2 (it is on the OS media) or leave out --key") from None
    finally:
        subprocess.call(["rm", "-rf", home])
