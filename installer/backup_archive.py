"""The backup archive: one tar.gz (mode 0600, written atomically) with a sha256 file beside it, and the checks a
restore makes before anything else (checksum, then the content).

Members:
    meta.json                    what, when, from where: cluster, bundle, Kubernetes version, etcd members (name,
                                 peer URLs), CA fingerprint, snapshot status, the host it was taken on
    etcd/snapshot.db             etcdctl snapshot save
    pki.tar.gz                   /etc/kubernetes/pki of the control plane it was taken on
    kubeadm-config.yaml          the kubeadm-config ConfigMap (when the API answered)
    kubeadm/<file>               the installer's kubeadm configs (/etc/kubernetes/airgap/*.yaml)
    journals/<host>.json         each host's installer journal
    cluster.json                 the cluster record
"""

import hashlib
import io
import json
import os
import re
import ssl
import tarfile
import time

from installer.errors import InstallerError

PREFIX = "airgap-backup-"
SUFFIX = ".tar.gz"
FORMAT = 1


def archive_name(cluster, unique, when=None):
    """airgap-backup-CLUSTER-YYYYmmddTHHMMSSZ-ID.tar.gz: names sort by time (retention relies on it)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when))
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", cluster or "cluster").strip("-") or "cluster"
    return "%s%s-%s-%s%s" % (PREFIX, safe, stamp, unique, SUFFIX)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ca_fingerprint(pem):
    """sha256 of the certificate's DER (what `openssl x509 -fingerprint -sha256` shows), lowercase hex."""
    if isinstance(pem, bytes):
        pem = str(pem, "ascii", "replace")
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", pem or "", re.S)
    if not m:
        return None
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(m.group(0))).hexdigest()


def write(path, members):
    """Write the archive `path` from {member name: bytes} (0600, via a temporary name) and PATH.sha256 beside
    it. Returns the archive's sha256."""
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        os.makedirs(d, 0o700)
    tmp = "%s.part-%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz") as tar:
                for name in sorted(members):
                    data = members[name]
                    info = tarfile.TarInfo(name)
                    info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
                    tar.addfile(info, io.BytesIO(data))
        digest = sha256_file(tmp)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    sums = path + ".sha256"
    fd = os.open(sums + ".part", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("%s  %s\n" % (digest, os.path.basename(path)))
    os.rename(sums + ".part", sums)
    return digest


def verify(path):
    """Refuse an archive that is missing, has no sha256 file or does not match it (tampered or damaged); return
    its sha256."""
    if not os.path.isfile(path):
        raise InstallerError("the backup %s does not exist" % path, hint="Give the path of an airgap-backup-*.tar.gz")
    sums = path + ".sha256"
    try:
        if not os.path.isfile(sums):  # absent, or a FIFO that would block the read
            raise IOError("not a regular file")
        with open(sums, "rb") as f:
            want = f.read(4096).decode("ascii", "replace").split()[:1]
    except (IOError, OSError):
        raise InstallerError(
            "the backup %s has no checksum file %s beside it, so it cannot be shown to be the archive the backup "
            "wrote; nothing was changed" % (path, sums),
            hint="Copy the .sha256 file with the archive (both are written by ./install.py backup), or use the copy "
                 "kept on the control plane in /var/lib/airgap-installer/backups/") from None
    got = sha256_file(path)
    if not want or want[0].lower() != got:
        raise InstallerError(
            "the backup %s does not match its checksum %s (sha256 %s, recorded %s): it was changed or damaged after "
            "the backup was taken, and restoring it could put an unknown state into etcd; nothing was changed"
            % (path, sums, got, want[0] if want else "nothing"),
            hint="Use another backup (the control plane keeps copies in /var/lib/airgap-installer/backups/), or copy "
                 "this one again from where it was stored")
    return got


def read(path):
    """{member name: bytes} of an archive (verify() it first)."""
    out = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for m in tar:
                if m.isfile():
                    out[m.name] = tar.extractfile(m).read()
    except (tarfile.TarError, IOError, OSError, EOFError) as e:
        raise InstallerError("the backup %s cannot be read: %s" % (path, e),
                             hint="Use another backup; this file matches its checksum but is not a tar.gz") from None
    for need in ("meta.json", "etcd/snapshot.db"):
        if need not in out:
            raise InstallerError("the backup %s has no %s: it is not an airgap-bundler backup" % (path, need),
                                 hint="Give an archive written by ./install.py backup")
    return out


def meta_of(members, path=""):
    try:
        meta = json.loads(bytes(members["meta.json"]).decode("utf-8"))
    except (ValueError, RecursionError):
        raise InstallerError("the backup %s has a malformed meta.json" % path) from None
    if not isinstance(meta, dict):
        raise InstallerError("the backup %s has a malformed meta.json (not an object)" % path,
                             hint="Give an archive written by ./install.py backup")
    if meta.get("format") != FORMAT:
        raise InstallerError("the backup %s has format %r; this installer reads format %d" % (
            path, meta.get("format"), FORMAT), hint="Restore it with the installer version that wrote it")
    listed = meta.get("members")
    if not isinstance(meta.get("takenOn") or {}, dict) or \
            not isinstance(listed or [], list) or not all(
                isinstance(m, dict) and isinstance(m.get("name"), str) and
                isinstance(m.get("peerURLs") or [], list) and all(isinstance(u, str) for u in m.get("peerURLs") or [])
                for m in listed or []):
        raise InstallerError("the backup %s has a malformed meta.json (takenOn, or members[] with name and "
                             "peerURLs)" % path, hint="Give an archive written by ./install.py backup")
    return meta


def prune(directory, keep):
    """Keep the `keep` newest archives in `directory` (by name: the timestamp sorts); remove the others and their
    sha256 files. Returns the removed archive names."""
    if keep is None or keep < 1 or not os.path.isdir(directory):
        return []
    names = sorted(n for n in os.listdir(directory) if n.startswith(PREFIX) and n.endswith(SUFFIX))
    gone = names[:-keep] if len(names) > keep else []
    for n in gone:
        for p in (os.path.join(directory, n), os.path.join(directory, n + ".sha256")):
            if os.path.exists(p):
                os.unlink(p)
    return gone


def prune_command(directory, keep):
    """The same retention as prune(), as a shell command for a remote host."""
    return ("cd %s 2>/dev/null && ls -1 %s*%s 2>/dev/null | sort | head -n -%d | while read f; do rm -f \"$f\" "
            "\"$f.sha256\"; echo \"$f\"; done; true" % (directory, PREFIX, SUFFIX, keep))


def check_pki(data, path=""):
    """pki.tar.gz is unpacked into /etc/kubernetes on every control plane (restore --new-cluster): only pki/ and
    the directories and regular files under it, never a link, a device or a name leaving pki/."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            bad = [m.name for m in tar if not (m.isfile() or m.isdir()) or ".." in m.name.split("/") or
                   not (m.name.rstrip("/") == "pki" or m.name.startswith("pki/"))]
    except (tarfile.TarError, IOError, OSError, EOFError) as e:
        raise InstallerError("the backup %s: pki.tar.gz cannot be read (%s)" % (path, e),
                             hint="Use another backup") from None
    if bad:
        raise InstallerError("the backup %s: pki.tar.gz holds %s, outside /etc/kubernetes/pki or not a plain file; "
                             "it is not put on any host" % (path, ", ".join(repr(b) for b in bad[:5])),
                             hint="Use a backup written by ./install.py backup; nothing was changed")
