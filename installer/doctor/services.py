"""Services and DNS layer (--service NS/NAME, --dns): the Service's selector against its ready endpoints and
targetPort, kube-proxy's mode, and on every node the iptables (or IPVS) rules kube-proxy should have written
for it and the conntrack entries; --dns checks kube-system/kube-dns that way, the CoreDNS pods, and looks up
names against the service address and each CoreDNS pod from every host (no debug pod: doctor creates
nothing in the cluster)."""

import json
import re

from installer.doctor.findings import ERROR, INFO, WARNING, excerpt, finding, layer_check
from installer.ssh import quote

LAYER = "services"
DNS_SERVICE = "kube-system/kube-dns"
DNS_NAME = "kubernetes.default.svc.cluster.local"
NAT = "iptables-save -t nat"
FILTER = "iptables-save -t filter"


def parse_target(text):
    ns, _, name = (text or "").rpartition("/")
    return ns or "default", name


def ready_endpoints(endpoints_json):
    """[(ip, port, port name)] of the ready addresses, and the count of not-ready ones."""
    ready, not_ready = [], 0
    for subset in (endpoints_json or {}).get("subsets") or []:
        ports = subset.get("ports") or [{}]
        for a in subset.get("addresses") or []:
            for p in ports:
                ready.append((a.get("ip"), p.get("port"), p.get("name")))
        not_ready += len(subset.get("notReadyAddresses") or [])
    return ready, not_ready


def matching_pods(selector, pods_json):
    out = []
    for p in (pods_json or {}).get("items", []):
        labels = (p.get("metadata") or {}).get("labels") or {}
        if selector and all(labels.get(k) == v for k, v in selector.items()):
            out.append(p)
    return out


def _pod_ready(p):
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (p.get("status") or {}).get("conditions", []))


def classify_service(svc, endpoints_json, pods_json, target, command):
    """Selector vs ready endpoints, and each port's targetPort against the selected pods' container ports."""
    if svc is None:
        return [finding("SVC-NOT-FOUND", ERROR, LAYER, target, "no such service", "Check the name and "
                        "namespace (kubectl get svc -A)", command, "NotFound")]
    out = []
    spec = svc.get("spec") or {}
    selector = spec.get("selector") or {}
    ready, not_ready = ready_endpoints(endpoints_json)
    pods = matching_pods(selector, pods_json)
    sel = ",".join("%s=%s" % kv for kv in sorted(selector.items()))
    if not selector:
        out.append(finding("SVC-NO-SELECTOR", INFO, LAYER, target, "the service has no selector: its endpoints "
                           "are managed by hand", "Check the Endpoints/EndpointSlices object it relies on",
                           command, "spec.selector: none"))
    if not ready and spec.get("type") != "ExternalName":
        why = ("the selector %s matches no pod" % sel if selector and not pods else
               "%d pod(s) match %s, %d ready; %d endpoint address(es) not ready" % (
                   len(pods), sel, sum(1 for p in pods if _pod_ready(p)), not_ready))
        out.append(finding("SVC-NO-ENDPOINTS", ERROR, LAYER, target, "no ready endpoints: %s" % why,
                           "Fix the selector to match the pods' labels, or make the pods ready (doctor --pod NS/NAME "
                           "on one of them)", command.replace(" get service ", " get endpoints "),
                           json.dumps((endpoints_json or {}).get("subsets") or [])[:600]))
    for port in spec.get("ports") or []:
        tp = port.get("targetPort", port.get("port"))
        if not pods:
            continue
        declared = [(c.get("name"), c.get("containerPort")) for p in pods
                    for ct in (p.get("spec") or {}).get("containers", []) for c in ct.get("ports") or []]
        if isinstance(tp, str) and not tp.isdigit():
            if tp not in [n for n, _ in declared]:
                out.append(finding("SVC-TARGETPORT-MISMATCH", ERROR, LAYER, target, "port %s targets the named "
                                   "port %r that no selected pod declares" % (port.get("port"), tp),
                                   "Name the container port %r or set targetPort to its number" % tp, command,
                                   "targetPort=%s; pods declare %s" % (tp, declared or "no ports")))
        elif declared and int(tp) not in [n for _, n in declared]:
            out.append(finding("SVC-TARGETPORT-MISMATCH", WARNING, LAYER, target, "port %s targets %s, which no "
                               "selected pod declares" % (port.get("port"), tp),
                               "Check the application listens on %s (declared ports: %s)" % (tp, declared),
                               command, "targetPort=%s; pods declare %s" % (tp, declared)))
    return out


def proxy_mode(configmap_json):
    conf = ((configmap_json or {}).get("data") or {}).get("config.conf", "")
    m = re.search(r"(?m)^mode:\s*[\"']?(\w*)", conf)
    return (m.group(1) if m else "") or "iptables"


def classify_iptables(nat, filt, svc, ready, target, host):
    """kube-proxy's iptables rules for the service on one host: KUBE-SERVICES -> KUBE-SVC-* -> KUBE-SEP-* DNAT
    to the ready endpoints (or the REJECT rule for a service without endpoints)."""
    out = []
    spec = svc.get("spec") or {}
    ip = spec.get("clusterIP")
    if not ip or ip == "None":
        return out
    want = sorted(set("%s:%s" % (a, p) for a, p, _ in ready))
    lines = nat.splitlines()
    svc_rules = [ln for ln in lines if ln.startswith("-A KUBE-SERVICES") and ("-d %s/32" % ip) in ln]
    reject = [ln for ln in filt.splitlines() if ("-d %s/32" % ip) in ln and "REJECT" in ln]
    if not svc_rules:
        if reject:
            if want:
                out.append(finding("SVC-IPTABLES-STALE", ERROR, LAYER, "%s@%s" % (target, host), "kube-proxy "
                                   "still rejects %s as having no endpoints, but %d are ready" % (ip, len(want)),
                                   "kube-proxy on this host is not syncing: check its pod and logs (kubectl -n "
                                   "kube-system logs kube-proxy-...)", FILTER, "\n".join(reject[:4]), host))
            return out
        out.append(finding("SVC-IPTABLES-MISSING", ERROR, LAYER, "%s@%s" % (target, host), "no iptables rule for "
                           "%s in KUBE-SERVICES: traffic to the service is not forwarded from this host" % ip,
                           "kube-proxy on this host is not running or not syncing: check its pod (kubectl -n "
                           "kube-system get pods -o wide | grep kube-proxy) and its logs", NAT,
                           excerpt(nat, "KUBE-SERVICES") or "(no KUBE-SERVICES chain)", host))
        return out
    chains = set()
    for ln in svc_rules:
        m = re.search(r"-j (KUBE-SVC-\w+|KUBE-EXT-\w+)", ln)
        if m:
            chains.add(m.group(1))
    seps, dnat, empty = [], [], []
    for ch in sorted(chains):
        mine = [re.search(r"-j (KUBE-SEP-\w+)", ln).group(1) for ln in lines
                if ln.startswith("-A %s " % ch) and re.search(r"-j (KUBE-SEP-\w+)", ln)]
        if not mine:
            empty.append(ch)
        seps += mine
    for sep in seps:
        for ln in lines:
            if ln.startswith("-A %s " % sep):
                m = re.search(r"--to-destination (\S+)", ln)
                if m:
                    dnat.append(m.group(1))
    if empty:
        shown = [ln for ln in svc_rules if any(("-j %s" % c) in ln for c in empty)]
        shown += [ln for ln in lines if any(ln.startswith((":%s " % c, "-A %s " % c)) for c in empty)]
        out.append(finding("SVC-IPTABLES-NO-BACKENDS", ERROR, LAYER, "%s@%s" % (target, host), "the chain %s for "
                           "%s jumps to no endpoint (KUBE-SEP-*) chain" % (", ".join(empty), ip),
                           "kube-proxy's rules on this host are broken or half-written: restart its pod on this "
                           "host (kubectl -n kube-system delete pod kube-proxy-...) and check its logs", NAT,
                           "\n".join(shown[:6]), host))
    elif want and sorted(set(dnat)) != want:
        out.append(finding("SVC-IPTABLES-STALE", ERROR, LAYER, "%s@%s" % (target, host), "the rules DNAT to %s but "
                           "the ready endpoints are %s" % (", ".join(sorted(set(dnat))) or "nothing", ", ".join(want)),
                           "kube-proxy on this host is not syncing: check its pod and logs", NAT,
                           "\n".join(ln for ln in lines if "--to-destination" in ln and
                                     any(ln.startswith("-A %s " % s) for s in seps))[:800], host))
    return out


def classify_ipvs(text, svc, ready, target, host, command):
    """`ipvsadm -Ln`: a virtual server per service port (clusterIP:port) with the ready endpoints as real
    servers."""
    spec = svc.get("spec") or {}
    ip = spec.get("clusterIP")
    if not ip or ip == "None":
        return []
    blocks, cur = {}, None
    for ln in text.splitlines():
        m = re.match(r"^(TCP|UDP|SCTP)\s+(\S+)", ln)
        if m:
            cur = "%s %s" % (m.group(1), m.group(2))
            blocks[cur] = []
        elif cur and ln.strip().startswith("->"):
            blocks[cur].append(ln.split()[1])
    want = sorted(set("%s:%s" % (a, p) for a, p, _ in ready))
    out = []
    for port in spec.get("ports") or []:
        vip = "%s %s:%s" % ((port.get("protocol") or "TCP").upper(), ip, port.get("port"))
        real = blocks.get(vip)
        if real is None:
            out.append(finding("SVC-IPVS-MISSING", ERROR, LAYER, "%s@%s" % (target, host), "IPVS has no virtual "
                               "server %s" % vip, "kube-proxy (ipvs mode) on this host is not running or not "
                               "syncing: check its pod and logs", command, excerpt(text, ip) or "(none)", host))
        elif not real and want:
            out.append(finding("SVC-IPVS-NO-BACKENDS", ERROR, LAYER, "%s@%s" % (target, host), "the virtual "
                               "server %s has no real server, though %d endpoint(s) are ready" % (vip, len(want)),
                               "kube-proxy (ipvs mode) on this host is not syncing: check its pod and logs",
                               command, vip, host))
        elif real and want and not set(real) <= set(want):
            out.append(finding("SVC-IPVS-STALE", ERROR, LAYER, "%s@%s" % (target, host), "the virtual server %s "
                               "sends to %s; the ready endpoints are %s" % (vip, ", ".join(real), ", ".join(want)),
                               "kube-proxy (ipvs mode) on this host is not syncing: check its pod and logs",
                               command, "%s -> %s" % (vip, ", ".join(real)), host))
    return out


def classify_conntrack(text, svc, target, host, command):
    t = text.strip()
    if "command not found" in t or "not found" in t.lower() and "conntrack" in t:
        return [finding("NODE-CONNTRACK-MISSING", WARNING, LAYER, host, "the conntrack tool is missing (kube-proxy "
                        "needs it to flush stale UDP entries, e.g. DNS)", "Install conntrack-tools from the OS "
                        "media", command, t, host)]
    try:
        n = int(t.splitlines()[-1])
    except (ValueError, IndexError):
        return []
    return [finding("SVC-CONNTRACK", INFO, LAYER, "%s@%s" % (target, host), "%d conntrack entr%s to %s"
                    % (n, "y" if n == 1 else "ies", (svc.get("spec") or {}).get("clusterIP")),
                    "For information (stale UDP entries after an endpoint change: conntrack -D -d IP)", command,
                    t, host)]


def classify_lookup(text, host, server, what, command):
    t = text.strip()
    ok = re.search(r"(?m)^Address(?:es)?:\s*\d+\.\d+\.\d+\.\d+\s*$", t.split("Name:", 1)[-1]) if "Name:" in t else \
        re.search(r"(?m)\sIN\s+A\s+\d", t)
    if ok:
        return []
    return [finding("DNS-LOOKUP-FAILED", ERROR, LAYER, "%s@%s" % (what, host), "%s does not resolve %s"
                    % (server, DNS_NAME), "Check the CoreDNS pods (doctor --pod kube-system/coredns-...), their "
                    "Corefile (kubectl -n kube-system get cm coredns -o yaml) and the service rules above",
                    command, excerpt(t) or "(no answer)", host)]


def check_service(env, state, target_text, dns=False):
    ns, name = parse_target(target_text)
    target = "service/%s/%s" % (ns, name)
    get = "-n %s get service %s -o json" % (quote(ns), quote(name))
    command = env.kubectl_command(get)
    rc, text, err = env.kubectl(get)
    if rc is None:
        return []
    if rc != 0:
        return [finding("SVC-NOT-FOUND", ERROR, LAYER, target, "cannot read the service", "Check the name and "
                        "namespace (kubectl get svc -A)", command, excerpt(err or text))]
    svc = json.loads(text)
    rc, etext, _ = env.kubectl("-n %s get endpoints %s -o json" % (quote(ns), quote(name)))
    endpoints = _json(etext) if rc == 0 else None
    rc, ptext, _ = env.kubectl("-n %s get pods -o json" % quote(ns))
    pods = _json(ptext) if rc == 0 else None
    out = classify_service(svc, endpoints, pods, target, command)
    ready, _ = ready_endpoints(endpoints)
    rc, ctext, _ = env.kubectl("-n kube-system get configmap kube-proxy -o json")
    mode = proxy_mode(_json(ctext) if rc == 0 else None)
    out.append(finding("KUBE-PROXY-MODE", INFO, LAYER, "kube-proxy", "kube-proxy runs in %s mode" % mode,
                       "For information", env.kubectl_command("-n kube-system get configmap kube-proxy -o json"),
                       "mode: %s" % mode))
    ip = (svc.get("spec") or {}).get("clusterIP")
    if mode not in ("iptables", "ipvs"):
        out.append(finding("SVC-RULES-NOT-CHECKED", INFO, LAYER, target, "kube-proxy's %s rules are not read by "
                           "doctor" % mode, "Read them by hand (nft list table ip kube-proxy)", "kubectl " + get,
                           "mode: %s" % mode))
    for h in env.hosts:
        if h not in env.ctx.nodes:
            continue
        if mode not in ("iptables", "ipvs"):
            pass
        elif mode == "ipvs":
            cmd = "ipvsadm -Ln 2>&1"
            out += classify_ipvs(env.run(h.label, cmd)[1], svc, ready, target, h.label, cmd)
        else:
            nat = env.run(h.label, "%s 2>&1" % NAT)[1]
            filt = env.run(h.label, "%s 2>&1" % FILTER)[1]
            out += classify_iptables(nat, filt, svc, ready, target, h.label)
        if ip and ip != "None":
            cmd = "conntrack -L -d %s 2>/dev/null | wc -l; command -v conntrack || echo 'conntrack: command not " \
                  "found'" % ip
            res = env.run(h.label, cmd)[1]
            lines = res.strip().splitlines()
            text = lines[-1] if lines and "not found" in lines[-1] else (lines[0] if lines else "")
            out += classify_conntrack(text, svc, target, h.label, "conntrack -L -d %s | wc -l" % ip)
    if dns:
        out += check_dns_lookups(env, svc, pods)
    return out


def check_dns_lookups(env, svc, pods):
    """Look the API's name up against the CoreDNS service address and every CoreDNS pod, from every host."""
    out = []
    servers = [("service %s" % (svc.get("spec") or {}).get("clusterIP"), (svc.get("spec") or {}).get("clusterIP"))]
    for p in matching_pods((svc.get("spec") or {}).get("selector") or {}, pods):
        ip = (p.get("status") or {}).get("podIP")
        if ip:
            servers.append(("pod %s" % p["metadata"]["name"], ip))
        if not _pod_ready(p):
            out.append(finding("DNS-POD-NOT-READY", ERROR, LAYER, "pod/kube-system/%s" % p["metadata"]["name"],
                               "a CoreDNS pod is not ready", "./install.py doctor --pod kube-system/%s"
                               % p["metadata"]["name"], "kubectl -n kube-system get pods -o json",
                               json.dumps((p.get("status") or {}).get("conditions", []))[:400]))
    for h in env.hosts:
        if h not in env.ctx.nodes:
            continue
        for what, ip in servers:
            if not ip or ip == "None":
                continue
            cmd = ("if command -v nslookup >/dev/null; then timeout 10 nslookup -timeout=3 %s %s 2>&1; "
                   "elif command -v dig >/dev/null; then timeout 10 dig +time=3 +tries=1 @%s %s A 2>&1; "
                   "else echo 'no nslookup or dig on this host'; fi" % (DNS_NAME, ip, ip, DNS_NAME))
            text = env.run(h.label, cmd)[1]
            if "no nslookup or dig" in text:
                out.append(finding("DNS-NO-TOOL", INFO, LAYER, h.label, "no nslookup or dig to test DNS from this "
                                   "host", "Install bind-utils from the OS media to test DNS from the hosts", cmd,
                                   text.strip(), h.label))
                break
            out += classify_lookup(text, h.label, "%s (%s)" % (what, ip), what, cmd)
    return out


@layer_check(LAYER)
def check(env, state, service=None, dns=False):
    out = []
    if service:
        out += check_service(env, state, service)
    if dns and service != DNS_SERVICE:
        out += check_service(env, state, DNS_SERVICE, dns=True)
    elif dns:
        out += check_dns_lookups(env, *_svc_and_pods(env))
    return out


def _svc_and_pods(env):
    rc, text, _ = env.kubectl("-n kube-system get service kube-dns -o json")
    rc2, ptext, _ = env.kubectl("-n kube-system get pods -o json")
    return (_json(text) or {}) if rc == 0 else {}, _json(ptext) if rc2 == 0 else None


def _json(text):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None
