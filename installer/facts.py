"""Facts: everything the phases decide on, gathered from a host in one read-only shell script.

Hosts may have no Python (a CentOS 7 minimal worker), so the probe is POSIX sh printing ``==> name``
sections. Each section is declared once below, its shell command next to the function that parses its
output (tests/installer/fixtures/ holds the output of EL7, EL8 and EL9 hosts). Phases only ever read a
Facts object: typed attributes with defaults, so a misspelt fact is an error, not a silent None.
"""

import base64
import shlex

from installer.kube import KUBE_MARKERS

# Packages and services whose state the phases look at.
WATCHED_RPMS = (
    "chrony", "containerd.io", "containerd", "docker-ce", "docker-ce-cli", "docker", "moby-engine", "cri-dockerd",
    "kubeadm", "kubelet", "kubectl", "cri-tools", "kubernetes-cni", "container-selinux", "conntrack-tools",
    "socat", "iptables", "ebtables", "ethtool", "iproute", "iproute-tc", "tar", "openssl", "python3",
    "httpd-tools", "ca-certificates", "runc",
)
WATCHED_SERVICES = (
    "chronyd", "ntpd", "containerd", "docker", "cri-docker.socket", "cri-docker", "kubelet", "firewalld",
    "airgap-repo", "airgap-registry", "airgap-registry-push", "opt-airgap-media.mount",
)
WATCHED_COMMANDS = ("kubeadm", "kubelet", "kubectl", "containerd", "docker", "cri-dockerd", "crictl", "yum", "dnf",
                    "firewall-cmd", "chronyd", "openssl", "htpasswd", "update-ca-trust")
KUBE_FILES = KUBE_MARKERS  # read on every host: is Kubernetes there already?
NO_SERVICE = {"active": False, "enabled": False, "exists": False}

# name -> default (a callable makes a fresh mutable default)
FIELDS = {
    "os_id": None, "os_id_like": "", "os_version_id": None, "os_pretty": None,
    "arch": None, "hostname": None, "cpus": 0, "mem_mb": 0, "disk_free_mb": 0, "time": 0,
    "swap_active": False, "selinux": "disabled", "modules": list, "addresses": list, "listening_ports": list,
    "python": None, "timezone": None, "fw_ports": list, "bin_sha": dict, "optical": None, "rpms": dict,
    "services": dict, "commands": list, "files": dict, "dirs": dict, "complete": False, "is_local": False,
}


class Facts(object):
    """One host's facts as attributes (facts.arch, facts.files, ...). The mapping protocol (facts["arch"],
    .get, .update) is kept for hand-written facts in tests; it refuses names that are not facts too."""

    __slots__ = tuple(FIELDS)

    def __init__(self, values=None, **kw):
        for name, default in FIELDS.items():
            object.__setattr__(self, name, default() if callable(default) else default)
        self.update(values or {}, **kw)

    @staticmethod
    def _known(key):
        if key not in FIELDS:
            raise KeyError("%r is not a fact (known: %s)" % (key, ", ".join(sorted(FIELDS))))
        return key

    def __getitem__(self, key):
        return getattr(self, self._known(key))

    def __setitem__(self, key, value):
        setattr(self, self._known(key), value)

    def get(self, key, default=None):
        value = getattr(self, self._known(key))
        return default if value is None else value

    def update(self, values=(), **kw):
        for k, v in (dict(values, **kw)).items():
            self[k] = v

    def as_dict(self):
        return dict((k, getattr(self, k)) for k in FIELDS)

    def __eq__(self, other):
        return isinstance(other, Facts) and self.as_dict() == other.as_dict()

    __hash__ = None  # mutable

    def __repr__(self):
        return "<Facts %s %s %s>" % (self.hostname, self.os_pretty, self.arch)

    # -- derived ------------------------------------------------------------------------------------------
    def file(self, path):
        """Current content of a watched file as text, or None if absent (or not gathered)."""
        return self.files.get(path)

    def has_file(self, path):
        return self.file(path) is not None

    def rpm(self, name):
        return self.rpms.get(name)

    def service(self, name):
        return self.services.get(name, dict(NO_SERVICE))

    @property
    def os_major(self):
        return (self.os_version_id or "").split(".")[0]

    @property
    def os_tag(self):
        """'el9' for a RHEL-family 9.x host, None otherwise."""
        like = (self.os_id_like or "") + " " + (self.os_id or "")
        if any(w in like.split() for w in ("rhel", "centos", "fedora", "rocky", "almalinux", "ol")) and self.os_major:
            return "el" + self.os_major
        return None


# -- the probe, section by section: (name, shell command, parser(lines, facts)) -------------------------------
def _first(lines):
    for ln in lines:
        if ln.strip():
            return ln.strip()
    return None


def _int(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def _words(lines):
    return [w for w in (ln.strip() for ln in lines) if w]


def _os_release(lines, f):
    osr = {}
    for line in lines:
        if "=" in line:
            k, v = line.split("=", 1)
            osr[k.strip()] = v.strip().strip('"').strip("'")
    f.os_id = osr.get("ID")
    f.os_id_like = osr.get("ID_LIKE", "")
    f.os_version_id = osr.get("VERSION_ID")
    f.os_pretty = osr.get("PRETTY_NAME")


def _set(name, convert=lambda ln: ln):
    def parse(lines, f):
        setattr(f, name, convert(_first(lines)))
    return parse


def _listening(lines, f):
    ports = set()
    for ln in lines:
        ln = ln.strip()
        if ":" in ln:
            try:
                ports.add(int(ln.rsplit(":", 1)[1]))
            except ValueError:
                pass
    f.listening_ports = sorted(ports)


def _bin_sha(lines, f):
    for ln in lines:
        parts = ln.split(None, 1)
        if len(parts) == 2:
            f.bin_sha[parts[1].strip()] = parts[0]


def _rpms(lines, f):
    for ln in lines:
        parts = ln.split()
        if len(parts) == 2:
            f.rpms[parts[0]] = parts[1]


def _services(lines, f):
    for ln in lines:
        parts = ln.split()
        if len(parts) == 3:
            name, active, enabled = parts
            f.services[name] = {"active": active == "active", "enabled": enabled in ("enabled", "static"),
                                "exists": enabled not in ("unknown", "not-found", "")}


def _sections(root):
    r = "" if root in ("/", "", None) else root.rstrip("/")
    rpm_qf = "%{NAME} %{VERSION}-%{RELEASE}\\n"
    return (
        ("os_release", "cat %s/etc/os-release 2>/dev/null" % (shlex.quote(r) if r else ""), _os_release),
        ("arch", "uname -m", _set("arch")),
        ("hostname", "hostname 2>/dev/null || cat /proc/sys/kernel/hostname", _set("hostname")),
        ("cpus", "getconf _NPROCESSORS_ONLN 2>/dev/null || nproc", _set("cpus", _int)),
        ("mem_kb", "awk '/^MemTotal:/ {print $2}' /proc/meminfo", _set("mem_mb", lambda v: _int(v) // 1024)),
        ("disk_free_kb", "df -Pk /var 2>/dev/null | awk 'NR==2 {print $4}'",
         _set("disk_free_mb", lambda v: _int(v) // 1024)),
        ("time", "date +%s", _set("time", _int)),
        ("swaps", "tail -n +2 /proc/swaps 2>/dev/null",
         lambda lines, f: setattr(f, "swap_active", bool(_words(lines)))),
        ("selinux", "if command -v getenforce >/dev/null 2>&1; then getenforce; else echo Disabled; fi",
         _set("selinux", lambda v: (v or "disabled").lower())),
        # loaded modules, built-in ones (/sys/module), and br_netfilter's effect where it is built in
        ("modules", "cut -d' ' -f1 /proc/modules 2>/dev/null; ls -1 /sys/module 2>/dev/null; "
                    "[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] && echo br_netfilter",
         lambda lines, f: setattr(f, "modules", sorted(set(_words(lines))))),
        ("addresses", "ip -o addr show 2>/dev/null | awk '{print $4}' | cut -d/ -f1",
         lambda lines, f: setattr(f, "addresses", _words(lines))),
        # ss of EL7 (iproute 4.11) has no -H: drop the header line instead; netstat only without ss
        ("listening", "if command -v ss >/dev/null 2>&1; then ss -tln 2>/dev/null | tail -n +2; "
                      "else netstat -tln 2>/dev/null | tail -n +3; fi | awk '{print $4}'", _listening),
        ("python", "for p in python3 /usr/libexec/platform-python; do command -v $p 2>/dev/null && break; done",
         _set("python")),
        ("timezone", "readlink /etc/localtime 2>/dev/null | sed 's|.*/zoneinfo/||'", _set("timezone")),
        ("fw_ports", "if systemctl is-active -q firewalld 2>/dev/null; then firewall-cmd --list-ports; fi",
         lambda lines, f: setattr(f, "fw_ports", sorted(set(" ".join(lines).split())))),
        ("bin_sha", "sha256sum /usr/local/bin/* /usr/local/sbin/* 2>/dev/null", _bin_sha),
        ("optical", "for d in /dev/sr0 /dev/cdrom; do [ -b $d ] && echo $d; done", _set("optical")),
        ("rpms", "rpm -q --qf '%s' %s 2>/dev/null | grep -v 'is not installed'" % (rpm_qf, " ".join(WATCHED_RPMS)),
         _rpms),
        ("services", "for s in %s; do a=$(systemctl is-active $s 2>/dev/null); e=$(systemctl is-enabled $s "
                     "2>/dev/null); echo \"$s ${a:-unknown} ${e:-unknown}\"; done" % " ".join(WATCHED_SERVICES),
         _services),
        ("commands", "for c in %s; do command -v $c >/dev/null 2>&1 && echo $c; done" % " ".join(WATCHED_COMMANDS),
         lambda lines, f: setattr(f, "commands", sorted(_words(lines)))),
    )


def script(root="/", files=(), dirs=()):
    """The probe, as one sh script. `files` are read (base64, section 'file PATH'), `dirs` listed ('dir PATH')."""
    r = "" if root in ("/", "", None) else root.rstrip("/")
    q = shlex.quote
    lines = ["export LC_ALL=C", "sec() { echo \"==> $1\"; }"]
    lines += ["sec %s; %s" % (name, cmd) for name, cmd, _ in _sections(root)]
    for p in tuple(files) + KUBE_FILES:
        rp = q(r + p)
        lines.append("if [ -f %s ]; then sec 'file %s'; base64 %s | tr -d '\\n'; echo; fi" % (rp, p, rp))
    for d in dirs:
        rd = q(r + d)
        lines.append("if [ -d %s ]; then sec 'dir %s'; ls -1A %s; fi" % (rd, d, rd))
    lines.append("sec end")
    return "\n".join(lines) + "\n"


def split_sections(text):
    """{section name: [lines]} and the names in order; lines before the first section are ignored."""
    sections, order, cur = {}, [], None
    for line in text.splitlines():
        if line.startswith("==> "):
            cur = line[4:]
            sections[cur] = []
            order.append(cur)
        elif cur is not None:
            sections[cur].append(line)
    return sections, order


def parse(text):
    """Parse the probe's output into Facts."""
    sections, order = split_sections(text)
    f = Facts()
    for name, _, parser in _sections("/"):
        parser(sections.get(name, []), f)
    for key in order:
        if key.startswith("file "):
            data = "".join(sections[key]).strip()
            try:
                f.files[key[5:]] = base64.b64decode(data).decode("utf-8", "replace")
            except (ValueError, TypeError):
                f.files[key[5:]] = ""
        elif key.startswith("dir "):
            f.dirs[key[4:]] = sorted(ln for ln in sections[key] if ln)
    f.complete = "end" in sections
    return f


def gather(conn, files=(), dirs=()):
    res = conn.run("sh -s", input=script(conn.root, files, dirs), check=False)
    facts = parse(res.stdout)
    if not facts.complete:
        from installer.errors import InstallerError
        raise InstallerError("gathering facts failed", host=conn.label, command="fact probe (sh)",
                             stderr=res.stderr)
    facts.is_local = conn.is_local
    return facts
