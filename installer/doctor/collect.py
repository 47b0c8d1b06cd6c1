"""--collect FILE: an offline support bundle (tar.gz) to carry out of the datacenter: per host the kubelet and
runtime journals, iptables/ipvs dumps, runtime and CNI configuration, the installer's journal; the cluster's
objects (Secrets with their values redacted) and events; bundle.json, the cluster record, the installer's
logs (command-line secrets redacted); doctor's own findings; and MANIFEST.json naming every member, its
source and sha256. Written 0600 and atomically (a temporary file beside FILE, renamed when complete)."""

import hashlib
import io
import json
import os
import re
import tarfile
import time

from installer import record as rec
from installer.errors import InstallerError
from installer.journal import JOURNAL, LOG_DIR

HOST_FILES = (
    ("journal-kubelet.txt", "journalctl -u kubelet --no-pager -o short-iso -n 2000 2>&1"),
    ("journal-containerd.txt", "journalctl -u containerd --no-pager -o short-iso -n 1000 2>&1"),
    ("journal-docker.txt", "journalctl -u docker -u cri-docker --no-pager -o short-iso -n 1000 2>&1"),
    ("iptables-nat.txt", "iptables-save -t nat 2>&1"),
    ("iptables-filter.txt", "iptables-save -t filter 2>&1"),
    ("ipvs.txt", "ipvsadm -Ln 2>&1"),
    ("crictl-info.json", "timeout 15 crictl info 2>&1"),
    ("crictl-ps.txt", "timeout 15 crictl ps -a 2>&1"),
    ("cni-config.txt", "for f in /etc/cni/net.d/*; do echo \"==> $f\"; cat \"$f\" 2>&1; done"),
    ("containerd-config.toml", "cat /etc/containerd/config.toml 2>&1"),
    ("containerd-hosts.toml.txt", "for f in /etc/containerd/certs.d/*/hosts.toml; do echo \"==> $f\"; "
                                  "cat \"$f\" 2>&1; done"),
    ("docker-daemon.json", "cat /etc/docker/daemon.json 2>&1"),
    ("kubelet-config.yaml", "cat /var/lib/kubelet/config.yaml 2>&1"),
    ("installer-journal.json", "cat %s 2>&1" % JOURNAL),
    ("sysctl.txt", "sysctl -n net.bridge.bridge-nf-call-iptables net.ipv4.ip_forward 2>&1"),
    ("df.txt", "df -P 2>&1"),
)
CLUSTER_FILES = (
    ("nodes.json", "get nodes -o json"),
    ("pods.json", "get pods -A -o json"),
    ("events.json", "get events -A -o json"),
    ("services.json", "get services -A -o json"),
    ("endpoints.json", "get endpoints -A -o json"),
    ("configmaps.json", "get configmaps -A -o json"),
    ("secrets-redacted.json", "get secrets -A -o json"),
    ("daemonsets.json", "get daemonsets -A -o json"),
    ("deployments.json", "get deployments -A -o json"),
)
LOG_RUNS = 5  # the installer's last runs' logs
REDACTED = "REDACTED"


SECRET_ARGS = re.compile(r"(htpasswd -nbB \S+ |--token[ =]|--certificate-key[ =]|password[=:] ?)(\S+)")


def redact_log(data):
    """An installer log with command-line secrets (htpasswd's password, tokens, certificate keys) replaced."""
    return SECRET_ARGS.sub(lambda m: m.group(1) + REDACTED, data.decode("utf-8", "replace")).encode("utf-8")


def redact_secrets(text):
    """A Secret list with every value of data/stringData (and the last-applied annotation) replaced."""
    try:
        doc = json.loads(text)
    except ValueError:
        return "secrets not collected: the output was not JSON\n"
    items = doc.get("items") if isinstance(doc, dict) and "items" in doc else [doc]
    for s in items:
        if not isinstance(s, dict):
            continue
        for key in ("data", "stringData"):
            if isinstance(s.get(key), dict):
                s[key] = dict((k, REDACTED) for k in s[key])
        ann = (s.get("metadata") or {}).get("annotations") or {}
        if "kubectl.kubernetes.io/last-applied-configuration" in ann:
            ann["kubectl.kubernetes.io/last-applied-configuration"] = REDACTED
    return json.dumps(doc, indent=1, sort_keys=True)


class Bundle(object):
    def __init__(self):
        self.members = []  # (name, bytes, source)

    def add(self, name, data, source):
        if isinstance(data, str):
            data = data.encode("utf-8", "replace")
        self.members.append((name, data, source))

    def manifest(self):
        return {"schema": "airgap-doctor-collect/1", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "members": [{"name": n, "bytes": len(d), "sha256": hashlib.sha256(d).hexdigest(), "source": s}
                            for n, d, s in self.members]}

    def write(self, path):
        """tar.gz at `path`, 0600, atomically (temporary file in the same directory, then rename)."""
        path = os.path.abspath(path)
        d = os.path.dirname(path)
        if not os.path.isdir(d):
            raise InstallerError("--collect %s: the directory %s does not exist" % (path, d),
                                 hint="Create it or give another path")
        tmp = os.path.join(d, ".%s.tmp-%d" % (os.path.basename(path), os.getpid()))
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                with tarfile.open(fileobj=f, mode="w:gz") as tar:
                    now = time.time()
                    for name, data, _ in [("MANIFEST.json", json.dumps(self.manifest(), indent=1).encode(), "")] + \
                            self.members:
                        info = tarfile.TarInfo("doctor-collect/" + name)
                        info.size = len(data)
                        info.mtime = now
                        info.mode = 0o600
                        tar.addfile(info, io.BytesIO(data))
            os.chmod(tmp, 0o600)
            os.rename(tmp, path)
        except OSError as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise InstallerError("--collect %s: cannot write it: %s" % (path, e.strerror or e),
                                 hint="Give a writable path with enough space") from None
        return path


def collect(env, report, path, root="/"):
    """Gather everything into the support bundle at `path`; returns (path, member count)."""
    b = Bundle()
    b.add("doctor.json", report.to_json(), "./install.py doctor --json")
    for h in env.hosts:
        for name, cmd in HOST_FILES:
            rc, text = env.run(h.label, cmd, timeout=120)
            b.add("hosts/%s/%s" % (h.label, name), text, "%s (on %s)" % (cmd, h.label))
    for name, args in CLUSTER_FILES:
        rc, text, err = env.kubectl(args, timeout=120)
        if rc is None:
            break
        data = text if rc == 0 else "kubectl %s failed (exit %s): %s\n" % (args, rc, err)
        if name.startswith("secrets") and rc == 0:
            data = redact_secrets(text)
        b.add("cluster/%s" % name, data, "kubectl %s%s" % (args, " (values redacted)" if "secret" in name else ""))
    bundle_json = env.ctx.bundle.path("bundle.json")
    if os.path.exists(bundle_json):
        with open(bundle_json, "rb") as f:
            b.add("bundle.json", f.read(), bundle_json)
    record_path = rec.serve_record_path(root)
    if os.path.exists(record_path):
        with open(record_path, "rb") as f:
            b.add("cluster-record.json", f.read(), rec.SERVE_RECORD)
    logs = os.path.join(root, LOG_DIR.lstrip("/"))
    if os.path.isdir(logs):
        for run in sorted(os.listdir(logs))[-LOG_RUNS:]:
            rd = os.path.join(logs, run)
            for n in sorted(os.listdir(rd)) if os.path.isdir(rd) else []:
                p = os.path.join(rd, n)
                if os.path.isfile(p):
                    with open(p, "rb") as f:
                        b.add("installer-logs/%s/%s" % (run, n), redact_log(f.read()),
                              os.path.join(LOG_DIR, run, n) + " (command-line secrets redacted)")
    return b.write(path), len(b.members) + 1
