"""What the checks read through: the hosts' connections and the cluster's kubectl, every command checked to
be a read before it runs (doctor never changes anything) and remembered, so the same read is not repeated
and the support bundle can list what was run."""

import re
import threading

from installer.constants import KUBECTL
from installer.errors import InstallerError
from installer.inventory import ROLE_CONTROL_PLANE

# A command is a read when every part of it (split on pipes, ;, &&, ||) starts with one of these. Writing
# redirections (> file other than /dev/null) are refused too.
READ_PREFIXES = (
    "systemctl is-active ", "systemctl is-enabled ", "systemctl show ", "journalctl ", "crictl info",
    "crictl images", "crictl ps", "ls ", "cat ", "test ", "openssl x509 ", "iptables-save", "ip6tables-save",
    "ipvsadm -Ln", "ipvsadm -S -n", "conntrack -L", "conntrack -C", "sysctl -n ", "df ", "date ", "curl ",
    "firewall-cmd --state", "firewall-cmd --list-", "head ", "tail ", "grep ", "sed -n ", "wc ", "echo ", "for ",
    "do ", "done", "if ", "then ", "else ", "elif ", "fi", "timeout ", "command -v ", "nslookup ", "dig ", "getent ",
    "export LC_ALL=C", "base64", "kubeadm certs check-expiration", "sort", "uniq", "[ ", "true", "cut ", "awk ",
    "printf ", "lsmod", "find ",
)
ETCDCTL_READS = ("endpoint health", "endpoint status", "alarm list", "member list")
KUBECTL_READS = ("get", "logs", "version", "describe")  # and `exec etcd-NODE -- etcdctl` with ETCDCTL_READS
_WRITE_REDIRECT = re.compile(r"(?<![0-9&])>{1,2}\s*(?!/dev/null|&)\S")
_SPLIT = re.compile(r"\|\||&&|[|;\n]|\$\(|`")


def is_read(cmd):
    """True when `cmd` only reads (see READ_PREFIXES); doctor refuses to run anything else."""
    unquoted = re.sub(r"'[^']*'", "''", cmd).replace("==>", "")  # '==> section' markers are text
    if _WRITE_REDIRECT.search(unquoted.replace("2>&1", "").replace("2>/dev/null", "").replace(">/dev/null", "")):
        return False
    if " -i " in cmd and "sed" in cmd:
        return False
    for part in _SPLIT.split(cmd):
        part = part.strip().lstrip("(").strip()
        if not part or part in (")", "}", "{"):
            continue
        if part.startswith(KUBECTL + " "):
            if not _kubectl_read(part[len(KUBECTL) + 1:].split()):
                return False
        elif not part.startswith(READ_PREFIXES):
            return False
    return True


def _kubectl_read(words):
    """kubectl's verb (after -n NS) is a read, or exec of etcdctl's reads in an etcd pod."""
    while words and words[0] in ("-n", "--namespace"):
        words = words[2:]
    if not words:
        return False
    if words[0] == "exec":
        rest = " ".join(words)
        return len(words) > 1 and words[1].startswith("etcd-") and any(r in rest for r in ETCDCTL_READS)
    return words[0] in KUBECTL_READS


class Env(object):
    """The connections (host label -> connection; hosts that did not answer are in `unreachable`), the
    context (bundle, inventory, addresses) and the cluster record."""

    def __init__(self, ctx, connections, unreachable=None, record=None, node_names=None, parallel=16):
        self.ctx = ctx
        self.connections = connections
        self.unreachable = dict(unreachable or {})  # label -> why
        self.record = record or {}
        self.node_names = dict(node_names or {})  # label -> Kubernetes node name
        self.parallel = parallel  # hosts probed at once (--parallel)
        self.ran = []  # (host, command, rc)
        self._cache = {}
        self._lock = threading.Lock()

    # -- hosts ------------------------------------------------------------------------------------------
    @property
    def hosts(self):
        return [h for h in self.ctx.all_hosts if h.label in self.connections]

    def host(self, label):
        return next(h for h in self.ctx.all_hosts if h.label == label)

    def node_name(self, host):
        return self.node_names.get(host.label) or self.ctx.node_name(host)

    @property
    def control_planes(self):
        return [h for h in self.hosts if h.role == ROLE_CONTROL_PLANE]

    @property
    def kube_host(self):
        """The control plane kubectl runs on (the first one that answers), or None."""
        cps = self.control_planes
        return cps[0] if cps else None

    # -- reading ----------------------------------------------------------------------------------------
    def run(self, label, cmd, timeout=60):
        """(rc, stdout + stderr) of a read-only command on a host; cached per host and command."""
        if not is_read(cmd):
            raise InstallerError("doctor refused to run a command that is not a read: %s" % cmd,
                                 hint="This is a bug in doctor; please report it with this message")
        key = (label, cmd)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        conn = self.connections[label]
        try:
            res = conn.run(cmd, check=False, timeout=timeout)
            got = (res.rc, (res.stdout or "") + (("\n" + res.stderr) if res.stderr and res.stderr.strip() else ""))
            out = (res.rc, res.stdout or "", res.stderr or "")
        except InstallerError as e:
            got = (124, e.message)
            out = (124, "", e.message)
        with self._lock:
            self._cache[key] = got
            self._cache[("split",) + key] = out
            self.ran.append((label, cmd, got[0]))
        return got

    def run_split(self, label, cmd, timeout=60):
        """(rc, stdout, stderr) of run()."""
        self.run(label, cmd, timeout)
        return self._cache[("split", label, cmd)]

    def kubectl(self, args, timeout=60):
        """(rc, stdout, stderr) of `kubectl ARGS` with the admin kubeconfig on the first control plane that
        answers; (None, '', why) when no control plane answers."""
        h = self.kube_host
        if h is None:
            return None, "", "no control plane answers"
        return self.run_split(h.label, "%s %s" % (KUBECTL, args), timeout)

    @staticmethod
    def kubectl_command(args):
        return "%s %s" % (KUBECTL, args)
