"""Nodes layer: the Node conditions, then per host (one read-only probe script each): kubelet and runtime
active, the kubelet journal classified, runtime and CNI status, disk, swap, clock skew against the serving
host, reachability of the API, the registry (with the installer's CA) and the repo; and the kernel settings
the service layer relies on (br_netfilter, sysctls, firewalld)."""

import concurrent.futures
import json
import re
import time

from installer import constants as C
from installer.doctor.findings import ERROR, INFO, WARNING, excerpt, finding, layer_check
from installer.facts import split_sections
from installer.inventory import ROLE_CONTROL_PLANE

LAYER = "nodes"
RUNTIMES = ("containerd", "docker", "cri-docker")
CNI_DIR = "/etc/cni/net.d"
JOURNAL = "journalctl -u kubelet --no-pager -o short-iso --since '-30min' -n 300"
CLOCK_WARN, CLOCK_ERROR = 2, 30  # seconds of skew against the serving host
DISK_WARN, DISK_ERROR = 85, 95   # percent used

# kubelet journal classes: (id, pattern, what it means, the fix). Patterns are the real messages (see
# tests/installer/fixtures/doctor/kubelet-journal/SOURCES.md).
JOURNAL_CLASSES = (
    ("KUBELET-CERT-EXPIRED",
     re.compile(r"certificate (?:\S+ )?(?:located at \S+ )?(?:which located at \S+ )?is expired|"
                r"client certificate has expired|x509: certificate has expired", re.I),
     "the kubelet's client certificate has expired",
     "Renew it: on a control plane ./install.py certs renew; on a worker remove /var/lib/kubelet/pki/"
     "kubelet-client-* and /etc/kubernetes/kubelet.conf and rejoin (./install.py remove-node + add-node)"),
    ("KUBELET-CGROUP-DRIVER-MISMATCH", re.compile(r"misconfiguration: kubelet cgroup driver: .* is different from",
                                                  re.I),
     "the kubelet and the container runtime use different cgroup drivers",
     "Use systemd on both: cgroupDriver: systemd in /var/lib/kubelet/config.yaml and SystemdCgroup = true in "
     "/etc/containerd/config.toml (or native.cgroupdriver=systemd for docker), then restart both"),
    ("KUBELET-SWAP-ON", re.compile(r"running with swap on is not supported", re.I),
     "the kubelet refuses to run with swap on",
     "swapoff -a and remove the swap entries from /etc/fstab, then systemctl restart kubelet"),
    ("KUBELET-CNI-NOT-INITIALIZED",
     re.compile(r"cni plugin not initialized|cni config uninitialized|No networks found in /etc/cni/net.d", re.I),
     "the kubelet reports the pod network is not ready (no CNI configuration)",
     "Check the CNI pods on this node (kubectl -n kube-system get pods -o wide | grep -e calico -e flannel) and "
     "that %s holds their configuration" % CNI_DIR),
    ("KUBELET-SANDBOX-IMAGE-PULL-FAILED",
     re.compile(r"failed to (?:get|inspect) sandbox image|failed pulling image \S*pause", re.I),
     "pod sandboxes cannot start: the pause (sandbox) image cannot be pulled",
     "The sandbox image must come from the bundled registry: check sandbox_image in /etc/containerd/"
     "config.toml, the registry mirror in /etc/containerd/certs.d and that the registry has the pause image"),
    ("KUBELET-NODE-NOT-FOUND", re.compile(r"node \\?\"?[\w.-]+\\?\"? not found"),
     "the kubelet cannot find its Node object (not registered, or deleted)",
     "Check the kubelet's --hostname-override/node name against `kubectl get nodes`; a deleted node needs a "
     "rejoin (./install.py add-node)"),
)


def probe_script(api, registry, repo_url):
    """The read-only probe of one host: '==> section' blocks (installer.facts.split_sections)."""
    rt = " ".join(RUNTIMES)
    return "\n".join([
        "export LC_ALL=C",
        "echo '==> services'; for s in kubelet %s firewalld; do echo \"$s $(systemctl is-active $s 2>/dev/null)\"; "
        "done" % rt,
        "echo '==> journal'; %s 2>&1 | tail -n 300" % JOURNAL,
        "echo '==> cni'; ls -1 %s 2>&1" % CNI_DIR,
        "echo '==> crictl'; timeout 15 crictl info 2>&1 | head -c 20000",
        "echo '==> df'; df -P /var /var/lib/containerd /var/lib/kubelet 2>/dev/null | tail -n +2 | sort | uniq",
        "echo '==> swaps'; tail -n +2 /proc/swaps 2>/dev/null",
        "echo '==> sysctl'; for k in net.bridge.bridge-nf-call-iptables net.ipv4.ip_forward; do "
        "echo \"$k $(sysctl -n $k 2>&1)\"; done",
        "echo '==> modules'; grep -e '^br_netfilter ' -e '^overlay ' /proc/modules 2>/dev/null | cut -d' ' -f1; "
        "[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] && echo bridge-nf-call-iptables",
        "echo '==> firewalld'; if systemctl is-active -q firewalld 2>/dev/null; then "
        "firewall-cmd --list-ports 2>&1; fi",
        "echo '==> reach_api'; curl -s -k -o /dev/null -w '%%{http_code}' --max-time 5 "
        "https://%s/readyz 2>&1; echo \" rc=$?\"" % api,
        "echo '==> reach_registry'; curl -s -o /dev/null -w '%%{http_code}' --max-time 5 --cacert %s "
        "https://%s/v2/ 2>&1; echo \" rc=$?\"" % (C.TRUST_ANCHOR, registry),
        "echo '==> reach_repo'; curl -s -o /dev/null -w '%%{http_code}' --max-time 5 %s/ 2>&1; echo \" rc=$?\""
        % repo_url,
        "echo '==> trust'; ls -1 %s /etc/containerd/certs.d 2>&1" % C.TRUST_ANCHOR,
        "echo '==> end'",
    ]) + "\n"


def probe(env, host):
    """{section: text} of the probe on `host`, or None when it did not run."""
    ctx = env.ctx
    script = probe_script(ctx.api_endpoint, ctx.registry, ctx.repo_url)
    rc, text = env.run(host.label, script, timeout=120)
    sections, _ = split_sections(text)
    if "end" not in sections:
        return None
    return dict((k, "\n".join(v)) for k, v in sections.items())


# -- Node objects ----------------------------------------------------------------------------------------------
def classify_node_objects(nodes_json, expected, command):
    """Ready and pressure conditions of every Node; hosts of the cluster record without a Node (`expected`:
    {node name: host label})."""
    out = []
    seen = set()
    for item in (nodes_json or {}).get("items", []):
        name = item["metadata"]["name"]
        seen.add(name)
        for c in (item.get("status") or {}).get("conditions", []):
            line = "%s %s=%s %s: %s" % (name, c.get("type"), c.get("status"), c.get("reason", ""),
                                        c.get("message", ""))
            if c.get("type") == "Ready" and c.get("status") != "True":
                out.append(finding("NODE-NOT-READY", ERROR, LAYER, "node/%s" % name, "NotReady: %s"
                                   % (c.get("message") or c.get("reason") or c.get("status")),
                                   "See this host's other findings (kubelet, runtime, CNI); journalctl -u kubelet "
                                   "on it", command, line))
            elif c.get("type") in ("DiskPressure", "MemoryPressure", "PIDPressure") and c.get("status") == "True":
                out.append(finding("NODE-%s" % c["type"].upper().replace("PRESSURE", "-PRESSURE"), ERROR, LAYER,
                                   "node/%s" % name, "%s: %s" % (c["type"], c.get("message", "")),
                                   "Free disk (crictl rmi --prune, old logs) or memory on the host; the kubelet "
                                   "evicts pods until it clears", command, line))
        if (item.get("spec") or {}).get("unschedulable"):
            out.append(finding("NODE-CORDONED", WARNING, LAYER, "node/%s" % name, "the node is cordoned "
                               "(unschedulable)", "kubectl uncordon %s once its maintenance is over" % name,
                               command, "%s spec.unschedulable=true" % name))
    for name, label in sorted(expected.items()):
        if name not in seen and nodes_json is not None:
            out.append(finding("NODE-NOT-REGISTERED", ERROR, LAYER, "node/%s" % name, "host %s is in the cluster "
                               "record but has no Node object" % label,
                               "Check the kubelet on %s (journalctl -u kubelet); a deleted node needs "
                               "./install.py add-node" % label, command, "no item named %s" % name))
    return out


# -- one host's probe ---------------------------------------------------------------------------------------------
def classify_services(text, host, runtime, k8s_version="1.30.0"):
    """kubelet and the runtime's services active (docker: cri-docker too from Kubernetes 1.24, which dropped
    dockershim)."""
    from installer.phases.runtime import needs_cri_dockerd
    out = []
    states = dict(ln.split(None, 1) for ln in text.splitlines() if len(ln.split(None, 1)) == 2)
    states.update((ln.strip(), "unknown") for ln in text.splitlines() if len(ln.split()) == 1)
    cmd = "systemctl is-active kubelet %s" % runtime
    if states.get("kubelet") != "active":
        out.append(finding("NODE-KUBELET-DOWN", ERROR, LAYER, host, "kubelet is %s" % states.get("kubelet"),
                           "systemctl start kubelet; if it keeps failing see journalctl -u kubelet (the journal "
                           "findings below classify it)", cmd, "kubelet %s" % states.get("kubelet"), host))
    if runtime == "docker":
        wanted = ("cri-docker", "docker") if needs_cri_dockerd(k8s_version) else ("docker",)
    else:
        wanted = ("containerd",)
    for svc in wanted:
        if states.get(svc) != "active":
            out.append(finding("NODE-RUNTIME-DOWN", ERROR, LAYER, host, "the container runtime %s is %s"
                               % (svc, states.get(svc)), "systemctl start %s; journalctl -u %s for why it stopped"
                               % (svc, svc), cmd, "%s %s" % (svc, states.get(svc)), host))
    return out


STARTED = re.compile(r"systemd\[1\]: Started .*[Kk]ubelet")


def classify_journal(text, host):
    """The kubelet journal since kubelet's last start (a failure fixed and restarted away is not reported; a
    crash loop fails again after each start): the last lines of each known failure class."""
    out = []
    lines = text.splitlines()
    starts = [i for i, ln in enumerate(lines) if STARTED.search(ln)]
    if starts:
        lines = lines[starts[-1]:]
    for fid, pattern, what, fix in JOURNAL_CLASSES:
        hits = [ln for ln in lines if pattern.search(ln)]
        if hits:
            out.append(finding(fid, ERROR, LAYER, host, "%s (%d journal line(s) since kubelet last started)"
                               % (what, len(hits)), fix, JOURNAL, "\n".join(hits[-2:]), host))
    return out


def classify_cni(cni_text, crictl_text, host):
    """The CNI configuration directory and what the runtime says of the pod network."""
    files = [f for f in cni_text.splitlines() if re.search(r"\.(conf|conflist|json)$", f.strip())]
    out = []
    network = None
    try:
        info = json.loads(crictl_text)
        for c in (info.get("status") or {}).get("conditions", []):
            if c.get("type") == "NetworkReady":
                network = c
    except ValueError:
        pass
    if not files:
        f = finding("NODE-CNI-CONFIG-MISSING", ERROR, LAYER, host, "no CNI configuration in %s" % CNI_DIR,
                    "The CNI's node pod writes it (calico-node install-cni / kube-flannel): check that pod on this "
                    "node (kubectl -n kube-system get pods -o wide) and its logs; the bundle's CNI manifest is "
                    "re-applied by ./install.py", "ls -1 %s" % CNI_DIR, cni_text.strip() or "(empty)", host)
        if network is not None and network.get("status") not in (True, "true"):
            f.add("crictl info", "NetworkReady=%s reason:%s %s" % (network.get("status"), network.get("reason", ""),
                                                                 network.get("message", "")), host)
        out.append(f)
    elif network is not None and network.get("status") not in (True, "true"):
        out.append(finding("NODE-RUNTIME-NETWORK-NOT-READY", ERROR, LAYER, host, "the runtime says the pod network "
                           "is not ready although %s has %s" % (CNI_DIR, ", ".join(files)),
                           "Check the CNI configuration's plugins exist in /opt/cni/bin and restart the runtime",
                           "crictl info", "NetworkReady=%s reason:%s %s" % (
                               network.get("status"), network.get("reason", ""), network.get("message", "")), host))
    return out


def classify_crictl(text, host):
    """The runtime's own status (RuntimeReady); crictl failing means the CRI socket does not answer."""
    try:
        info = json.loads(text)
    except ValueError:
        return [finding("NODE-RUNTIME-NOT-ANSWERING", ERROR, LAYER, host, "the CRI endpoint does not answer",
                        "Check the runtime service and /etc/crictl.yaml's runtime-endpoint", "crictl info",
                        excerpt(text), host)]
    for c in (info.get("status") or {}).get("conditions", []):
        if c.get("type") == "RuntimeReady" and c.get("status") not in (True, "true"):
            return [finding("NODE-RUNTIME-NOT-READY", ERROR, LAYER, host, "the runtime is not ready: %s"
                            % c.get("message", ""), "journalctl -u containerd", "crictl info",
                            json.dumps(c), host)]
    return []


def classify_disk(text, host):
    out = []
    for ln in text.splitlines():
        parts = ln.split()
        if len(parts) < 6 or not parts[4].endswith("%") or not parts[4][:-1].isdigit():
            continue
        used = int(parts[4][:-1])
        if used >= DISK_WARN:
            out.append(finding("NODE-DISK-FULL" if used >= DISK_ERROR else "NODE-DISK-LOW",
                               ERROR if used >= DISK_ERROR else WARNING, LAYER, "%s:%s" % (host, parts[5]),
                               "%s is %d%% full" % (parts[5], used),
                               "Free space: crictl rmi --prune, journalctl --vacuum-size, old logs; the kubelet "
                               "evicts pods above its threshold", "df -P /var /var/lib/containerd /var/lib/kubelet",
                               ln, host))
    return out


def classify_swap(text, host):
    rows = [ln for ln in text.splitlines() if ln.strip()]
    if rows:
        return [finding("NODE-SWAP-ON", ERROR, LAYER, host, "swap is on", "swapoff -a and remove swap from "
                        "/etc/fstab (the kubelet refuses to start with swap on after a reboot)",
                        "tail -n +2 /proc/swaps", "\n".join(rows), host)]
    return []


def classify_clock(text, local_before, local_after, host):
    """The host's `date +%s` against this (the serving) host's clock read just before and after asking it:
    the skew beyond the round trip."""
    try:
        remote = int(text.strip().splitlines()[-1])
    except (ValueError, IndexError, TypeError):
        return []
    mid = (local_before + local_after) / 2.0
    slack = (local_after - local_before) / 2.0 + 1  # the round trip, and date's one-second resolution
    skew = remote - mid
    beyond = max(0.0, abs(skew) - slack)
    if beyond >= CLOCK_WARN:
        return [finding("NODE-CLOCK-SKEW", ERROR if beyond >= CLOCK_ERROR else WARNING, LAYER, host,
                        "the clock is %+d s off the serving host's" % round(skew),
                        "Check chronyd on this host (chronyc sources): the installer points it at the serving host",
                        "date +%s", "%s: %s; serving host: %d..%d" % (host, text.strip(), local_before, local_after),
                        host)]
    return []


def classify_kernel(sysctl_text, modules_text, firewalld_text, services_text, host, is_cp):
    out = []
    values = dict(ln.split(None, 1) for ln in sysctl_text.splitlines() if len(ln.split(None, 1)) == 2)
    if "bridge-nf-call-iptables" not in modules_text and "br_netfilter" not in modules_text:
        out.append(finding("NODE-BR-NETFILTER-MISSING", ERROR, LAYER, host, "br_netfilter is not loaded: bridged "
                           "pod traffic bypasses the service rules", "modprobe br_netfilter and list it in "
                           "/etc/modules-load.d/ (the installer's host_prep phase does)",
                           "grep br_netfilter /proc/modules", modules_text.strip() or "(not loaded)", host))
    for key in ("net.bridge.bridge-nf-call-iptables", "net.ipv4.ip_forward"):
        v = values.get(key, "").strip()
        if v.isdigit() and v != "1":
            out.append(finding("NODE-SYSCTL", ERROR, LAYER, host, "%s = %s (must be 1)" % (key, v),
                               "sysctl -w %s=1 and keep it in /etc/sysctl.d/ (the installer's host_prep phase does)"
                               % key, "sysctl -n %s" % key, "%s %s" % (key, v), host))
    active = any(ln.startswith("firewalld active") for ln in services_text.splitlines())
    if active:
        ports = set(firewalld_text.split())
        need = [p for p in ((C.CP_PORTS if is_cp else C.WORKER_PORTS)) if "%d/tcp" % p not in ports]
        if need:
            out.append(finding("NODE-FIREWALL-PORTS", WARNING, LAYER, host, "firewalld is on and does not open %s"
                               % ", ".join("%d/tcp" % p for p in need),
                               "firewall-cmd --permanent --add-port=PORT/tcp; firewall-cmd --reload (or re-run "
                               "./install.py with --firewalld on)", "firewall-cmd --list-ports",
                               firewalld_text.strip() or "(none)", host))
    return out


def classify_reach(api_text, registry_text, repo_text, trust_text, host, ctx):
    out = []
    code = (api_text.strip().split() or ["000"])[0]
    if code in ("000", ""):
        out.append(finding("NODE-API-UNREACHABLE", ERROR, LAYER, host, "cannot reach the API at %s"
                           % ctx.api_endpoint, "Check the network and firewalls between this host and %s (port "
                           "6443)" % ctx.api_endpoint, "curl -k https://%s/readyz" % ctx.api_endpoint,
                           api_text.strip(), host))
    m = re.match(r"(\d{3})\s+rc=(\d+)", registry_text.strip())
    code, rc = (m.group(1), int(m.group(2))) if m else ("000", 7)
    if rc in (35, 51, 58, 60, 77, 83, 90, 91):
        out.append(finding("NODE-REGISTRY-UNTRUSTED", ERROR, LAYER, host, "the registry %s does not verify with "
                           "the installer's CA %s (curl exit %d)" % (ctx.registry, C.TRUST_ANCHOR, rc),
                           "Put the registry CA (%s on the serving host) at %s, run update-ca-trust extract, and "
                           "check /etc/containerd/certs.d/*/hosts.toml names it" % (C.CA_CERT, C.TRUST_ANCHOR),
                           "curl --cacert %s https://%s/v2/" % (C.TRUST_ANCHOR, ctx.registry),
                           registry_text.strip() + "\n" + trust_text.strip(), host))
    elif code not in ("200", "401"):
        out.append(finding("NODE-REGISTRY-UNREACHABLE", ERROR, LAYER, host, "cannot reach the registry %s (HTTP "
                           "%s, curl exit %d)" % (ctx.registry, code, rc),
                           "Check airgap-registry.service on the serving host and the network/firewall (port %s)"
                           % ctx.registry.rsplit(":", 1)[-1],
                           "curl --cacert %s https://%s/v2/" % (C.TRUST_ANCHOR, ctx.registry),
                           registry_text.strip(), host))
    m = re.match(r"(\d{3})\s+rc=(\d+)", repo_text.strip())
    code = m.group(1) if m else "000"
    if code == "000" or code.startswith("5"):
        out.append(finding("NODE-REPO-UNREACHABLE", ERROR, LAYER, host, "cannot reach the package repo %s"
                           % ctx.repo_url, "Check airgap-repo.service on the serving host and the network",
                           "curl %s/" % ctx.repo_url, repo_text.strip(), host))
    return out


@layer_check(LAYER)
def check(env, state):
    out = []
    ctx = env.ctx
    for label, why in sorted(env.unreachable.items()):
        out.append(finding("NODE-UNREACHABLE", ERROR, LAYER, label, "the host does not answer SSH",
                           "Check the host is up and sshd runs; if it is dead, ./install.py remove-node NAME takes "
                           "it out", "ssh %s true" % label, why, None))
    for label in sorted(getattr(ctx, "skipped", ())):
        out.append(finding("NODE-SKIPPED", INFO, LAYER, label, "not checked (--skip-unreachable)",
                           "Drop --skip-unreachable %s once the host is back" % label))
    expected = dict((env.node_name(h), h.label) for h in ctx.nodes if h.label not in getattr(ctx, "skipped", ()))
    if state.get("nodes_json") is not None:
        out += classify_node_objects(state["nodes_json"], expected, state.get("nodes_cmd", "kubectl get nodes"))
    hosts = env.hosts
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(env.parallel, len(hosts) or 1))) as pool:
        probes = dict(zip([h.label for h in hosts], pool.map(lambda h: probe(env, h), hosts)))
    state["probes"] = probes

    def clock(h):
        before = time.time()
        text = env.run(h.label, "date +%s")[1]
        return h.label, (text, before, time.time())
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(env.parallel, len(hosts) or 1))) as pool:
        clocks = dict(pool.map(clock, [h for h in hosts if h is not ctx.serve_host]))
    for h in env.hosts:
        p = probes.get(h.label)
        if p is None:
            out.append(finding("NODE-PROBE-FAILED", ERROR, LAYER, h.label, "the read-only probe did not finish",
                               "Run it by hand to see why: ssh to the host and run the commands in the doctor log",
                               "sh (doctor probe)", "", h.label))
            continue
        if h not in ctx.nodes:  # the serving host outside the cluster: only what serves the cluster
            out += classify_disk(p.get("df", ""), h.label)
            continue
        out += classify_services(p.get("services", ""), h.label, ctx.bundle.runtime, ctx.bundle.k8s_version)
        out += classify_journal(p.get("journal", ""), h.label)
        out += classify_crictl(p.get("crictl", ""), h.label)
        out += classify_cni(p.get("cni", ""), p.get("crictl", ""), h.label)
        out += classify_disk(p.get("df", ""), h.label)
        out += classify_swap(p.get("swaps", ""), h.label)
        if h.label in clocks:
            text, before, after = clocks[h.label]
            out += classify_clock(text, before, after, h.label)
        out += classify_kernel(p.get("sysctl", ""), p.get("modules", ""), p.get("firewalld", ""),
                               p.get("services", ""), h.label, h.role == ROLE_CONTROL_PLANE)
        out += classify_reach(p.get("reach_api", ""), p.get("reach_registry", ""), p.get("reach_repo", ""),
                              p.get("trust", ""), h.label, ctx)
    return out
