"""Facts: everything the phases decide on, gathered from a host in one read-only shell script.

Hosts may have no Python (a CentOS 7 minimal worker), so the probe is POSIX sh printing ``==> key``
sections; :func:`parse` turns them into a Facts object. Phases only ever read Facts, which is why their
decisions are unit-testable with hand-written dicts.
"""

import base64
import shlex

# Packages and services whose state the phases look at.
WATCHED_RPMS = (
    "chrony", "containerd.io", "containerd", "docker-ce", "docker-ce-cli", "docker", "moby-engine", "cri-dockerd",
    "kubeadm", "kubelet", "kubectl", "cri-tools", "kubernetes-cni", "container-selinux", "conntrack-tools",
    "socat", "iptables", "ebtables", "ethtool", "iproute", "iproute-tc", "tar", "openssl", "python3",
    "httpd-tools", "ca-certificates",
)
WATCHED_SERVICES = (
    "chronyd", "ntpd", "containerd", "docker", "cri-docker.socket", "cri-docker", "kubelet", "firewalld",
    "airgap-repo", "airgap-registry", "airgap-registry-push", "opt-airgap-media.mount",
)
WATCHED_PORTS = (80, 443, 2379, 2380, 5000, 5001, 6443, 8089, 10250, 10257, 10259)
KUBE_FILES = ("/etc/kubernetes/admin.conf", "/etc/kubernetes/kubelet.conf",
              "/etc/kubernetes/manifests/kube-apiserver.yaml")


class Facts(dict):
    """A dict with a default-tolerant accessor: facts.get_path('files', '/etc/hosts')."""

    def get_path(self, *keys, **kw):
        cur = self
        for k in keys:
            if not isinstance(cur, dict) or k not in cur:
                return kw.get("default")
            cur = cur[k]
        return cur

    def file(self, path):
        """Current content of a watched file as text, or None if absent (or not gathered)."""
        return self.get("files", {}).get(path)

    def has_file(self, path):
        return self.file(path) is not None

    def rpm(self, name):
        return self.get("rpms", {}).get(name)

    def service(self, name):
        return self.get("services", {}).get(name, {"active": False, "enabled": False, "exists": False})

    @property
    def os_major(self):
        v = self.get("os_version_id") or ""
        return v.split(".")[0]

    @property
    def os_tag(self):
        """'el9' for a RHEL-family 9.x host, None otherwise."""
        like = (self.get("os_id_like") or "") + " " + (self.get("os_id") or "")
        if any(w in like.split() for w in ("rhel", "centos", "fedora", "rocky", "almalinux", "ol")) and self.os_major:
            return "el" + self.os_major
        return None


def script(root="/", files=(), dirs=()):
    """The probe, as one sh script. `files` are read (base64), `dirs` listed."""
    r = "" if root in ("/", "", None) else root.rstrip("/")
    q = shlex.quote
    lines = [
        "export LC_ALL=C",
        "sec() { echo \"==> $1\"; }",
        "sec os_release; cat %s/etc/os-release 2>/dev/null" % (q(r) if r else ""),
        "sec arch; uname -m",
        "sec hostname; hostname 2>/dev/null || cat /proc/sys/kernel/hostname",
        "sec cpus; getconf _NPROCESSORS_ONLN 2>/dev/null || nproc",
        "sec mem_kb; awk '/^MemTotal:/ {print $2}' /proc/meminfo",
        "sec disk_free_kb; df -Pk /var 2>/dev/null | awk 'NR==2 {print $4}'",
        "sec time; date +%s",
        "sec swaps; tail -n +2 /proc/swaps 2>/dev/null",
        "sec selinux; if command -v getenforce >/dev/null 2>&1; then getenforce; else echo Disabled; fi",
        # loaded modules, built-in ones (/sys/module), and br_netfilter's effect where it is built in
        "sec modules; cut -d' ' -f1 /proc/modules 2>/dev/null; ls -1 /sys/module 2>/dev/null; "
        "[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] && echo br_netfilter",
        "sec addresses; ip -o addr show 2>/dev/null | awk '{print $4}' | cut -d/ -f1",
        "sec listening; (ss -Htln 2>/dev/null || netstat -tln 2>/dev/null | tail -n +3) | awk '{print $4}'",
        "sec python; for p in python3 /usr/libexec/platform-python; do command -v $p 2>/dev/null && break; done",
        "sec timezone; readlink /etc/localtime 2>/dev/null | sed 's|.*/zoneinfo/||'",
        "sec fw_ports; if systemctl is-active -q firewalld 2>/dev/null; then firewall-cmd --list-ports; fi",
        "sec bin_sha; sha256sum /usr/local/bin/* /usr/local/sbin/* 2>/dev/null",
        "sec optical; for d in /dev/sr0 /dev/cdrom; do [ -b $d ] && echo $d; done",
        "sec rpms; rpm -q --qf '%%{NAME} %%{VERSION}-%%{RELEASE}\\n' %s 2>/dev/null | grep -v 'is not installed'"
        % " ".join(WATCHED_RPMS),
        "sec services; for s in %s; do "
        "a=$(systemctl is-active $s 2>/dev/null); e=$(systemctl is-enabled $s 2>/dev/null); "
        "echo \"$s ${a:-unknown} ${e:-unknown}\"; done" % " ".join(WATCHED_SERVICES),
        "sec commands; for c in kubeadm kubelet kubectl containerd docker cri-dockerd crictl yum dnf "
        "firewall-cmd chronyd openssl htpasswd update-ca-trust; do command -v $c >/dev/null 2>&1 && echo $c; done",
    ]
    for p in tuple(files) + KUBE_FILES:
        rp = q(r + p)
        lines.append("if [ -f %s ]; then sec 'file %s'; base64 %s | tr -d '\\n'; echo; fi" % (rp, p, rp))
    for d in dirs:
        rd = q(r + d)
        lines.append("if [ -d %s ]; then sec 'dir %s'; ls -1A %s; fi" % (rd, d, rd))
    lines.append("sec end")
    return "\n".join(lines) + "\n"


def parse(text):
    """Parse the probe's output into Facts."""
    sections = {}
    order = []
    cur = None
    for line in text.splitlines():
        if line.startswith("==> "):
            cur = line[4:]
            sections[cur] = []
            order.append(cur)
        elif cur is not None:
            sections[cur].append(line)
    f = Facts()
    osr = {}
    for line in sections.get("os_release", []):
        if "=" in line:
            k, v = line.split("=", 1)
            osr[k.strip()] = v.strip().strip('"').strip("'")
    f["os_id"] = osr.get("ID")
    f["os_id_like"] = osr.get("ID_LIKE", "")
    f["os_version_id"] = osr.get("VERSION_ID")
    f["os_pretty"] = osr.get("PRETTY_NAME")
    f["arch"] = _first(sections, "arch")
    f["hostname"] = _first(sections, "hostname")
    f["cpus"] = _int(_first(sections, "cpus"))
    f["mem_mb"] = _int(_first(sections, "mem_kb")) // 1024
    f["disk_free_mb"] = _int(_first(sections, "disk_free_kb")) // 1024
    f["time"] = _int(_first(sections, "time"))
    f["swap_active"] = any(ln.strip() for ln in sections.get("swaps", []))
    f["selinux"] = (_first(sections, "selinux") or "disabled").lower()
    f["modules"] = sorted(set(ln.strip() for ln in sections.get("modules", []) if ln.strip()))
    f["addresses"] = [a for a in (ln.strip() for ln in sections.get("addresses", [])) if a]
    ports = set()
    for ln in sections.get("listening", []):
        ln = ln.strip()
        if ":" in ln:
            try:
                ports.add(int(ln.rsplit(":", 1)[1]))
            except ValueError:
                pass
    f["listening_ports"] = sorted(ports)
    f["python"] = _first(sections, "python")
    f["timezone"] = _first(sections, "timezone")
    f["fw_ports"] = sorted(set(" ".join(sections.get("fw_ports", [])).split()))
    bin_sha = {}
    for ln in sections.get("bin_sha", []):
        parts = ln.split(None, 1)
        if len(parts) == 2:
            bin_sha[parts[1].strip()] = parts[0]
    f["bin_sha"] = bin_sha
    f["optical"] = _first(sections, "optical")
    rpms = {}
    for ln in sections.get("rpms", []):
        parts = ln.split()
        if len(parts) == 2:
            rpms[parts[0]] = parts[1]
    f["rpms"] = rpms
    services = {}
    for ln in sections.get("services", []):
        parts = ln.split()
        if len(parts) == 3:
            name, active, enabled = parts
            services[name] = {"active": active == "active", "enabled": enabled in ("enabled", "static"),
                              "exists": enabled not in ("unknown", "not-found", "")}
    f["services"] = services
    f["commands"] = sorted(ln.strip() for ln in sections.get("commands", []) if ln.strip())
    files = {}
    dirs = {}
    for key in order:
        if key.startswith("file "):
            data = "".join(sections[key]).strip()
            try:
                files[key[5:]] = base64.b64decode(data).decode("utf-8", "replace")
            except (ValueError, TypeError):
                files[key[5:]] = ""
        elif key.startswith("dir "):
            dirs[key[4:]] = sorted(ln for ln in sections[key] if ln)
    f["files"] = files
    f["dirs"] = dirs
    f["complete"] = "end" in sections
    return f


def _first(sections, key):
    for ln in sections.get(key, []):
        if ln.strip():
            return ln.strip()
    return None


def _int(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def gather(conn, files=(), dirs=()):
    res = conn.run("sh -s", input=script(conn.root, files, dirs), check=False)
    facts = parse(res.stdout)
    if not facts.get("complete"):
        from installer.errors import InstallerError
        raise InstallerError("gathering facts failed", host=conn.label, command="fact probe (sh)",
                             stderr=res.stderr)
    facts["is_local"] = conn.is_local
    return facts
