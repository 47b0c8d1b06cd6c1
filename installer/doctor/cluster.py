"""Cluster layer, in runbook order: API readyz, etcd health and alarms, certificate expiry, static pod image
tags against kubeadm's configuration, version skew, and the bundled registry holding every bundle image."""

import calendar
import json
import re
import time

from installer import constants as C
from installer.bundle import split_ref
from installer.inventory import ROLE_CONTROL_PLANE
from installer.doctor.findings import ERROR, INFO, WARNING, excerpt, finding, layer_check
from installer.ssh import quote

LAYER = "cluster"
READYZ = "get --raw '/readyz?verbose'"
VERSION = "get --raw /version"
ETCD_CERTS = ("--endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt "
              "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt "
              "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key")
CERT_GLOBS = ("/etc/kubernetes/pki/*.crt", "/etc/kubernetes/pki/etcd/*.crt",
              "/var/lib/kubelet/pki/kubelet-client-current.pem", "/var/lib/kubelet/pki/kubelet.crt")
REGISTRY_CERTS = (C.CA_CERT, C.PKI_DIR + "/registry.crt")
CERT_ERROR_DAYS = 30   # fewer days left than this: an error (renew now)
CERT_WARN_DAYS = 90    # fewer than this: a warning (as certs check and status warn)
MANIFESTS = "/etc/kubernetes/manifests"
KUBEADM_CONFIG = C.KUBE_DIR + "/kubeadm.yaml"
CONTROL_PLANE_PODS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
MANIFEST_ACCEPT = ("application/vnd.oci.image.index.v1+json,application/vnd.oci.image.manifest.v1+json,"
                   "application/vnd.docker.distribution.manifest.list.v2+json,"
                   "application/vnd.docker.distribution.manifest.v2+json")


# -- API --------------------------------------------------------------------------------------------------
def classify_readyz(rc, out, err, where):
    cmd = "kubectl " + READYZ
    if rc is None:
        return [finding("API-UNREACHABLE", ERROR, LAYER, "kube-apiserver", "no control plane answers SSH, so "
                        "the API cannot be asked", "Bring a control-plane host back (see the nodes findings)",
                        cmd, err, where)]
    both = (out + "\n" + (err or "")).replace("\\n", "\n")
    failed = [ln.strip() for ln in both.splitlines() if ln.strip().startswith("[-]")]
    if failed:  # kubectl exits 1 on readyz's HTTP 500 and quotes the body
        return [finding("API-NOT-READY", ERROR, LAYER, "kube-apiserver", "the API server is not ready: %s"
                        % ", ".join(ln[3:].split()[0] for ln in failed),
                        "Read the failing checks; an [-]etcd check points at etcd (see ETCD-* findings)",
                        cmd, "\n".join(failed), where)]
    if rc != 0:
        return [finding("API-UNREACHABLE", ERROR, LAYER, "kube-apiserver", "the API server does not answer",
                        "Check the kube-apiserver static pod on the control planes (crictl ps -a | grep "
                        "kube-apiserver; crictl logs ID), the kubelet there and etcd",
                        cmd, excerpt(err or out), where)]
    return []


# -- etcd -------------------------------------------------------------------------------------------------
def etcdctl_args(node, what):
    return "-n kube-system exec etcd-%s -- etcdctl %s %s" % (node, ETCD_CERTS, what)


def classify_etcd(node, health, alarms, where):
    """health, alarms: (rc, stdout, stderr) of `etcdctl endpoint health -w json` and `etcdctl alarm list`."""
    out = []
    target = "etcd-%s" % node
    rc, text, err = health
    cmd = "kubectl " + etcdctl_args(node, "endpoint health -w json")
    healthy = None
    try:
        rows = json.loads(text)
        rows = [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []  # as etcdctl -w json
        healthy = all(r.get("health") in (True, "true") for r in rows) and bool(rows)
        detail = "; ".join("%s %s" % (r.get("endpoint"), r.get("error") or "") for r in rows if not r.get("health"))
    except ValueError:
        detail = (err or text).strip()
    if rc != 0 or not healthy:
        out.append(finding("ETCD-UNHEALTHY", ERROR, LAYER, target, "etcd on %s is not healthy%s"
                           % (node, ": " + detail[:200] if detail else ""),
                           "Check the etcd static pod (crictl ps -a | grep etcd; crictl logs ID), disk latency "
                           "and the member list; restore from a backup only when quorum is lost",
                           cmd, excerpt(text + "\n" + err), where))
    rc, text, err = alarms
    raised = [ln.strip() for ln in text.splitlines() if "alarm:" in ln]
    if raised:
        nospace = any("NOSPACE" in a for a in raised)
        out.append(finding("ETCD-ALARM", ERROR, LAYER, target, "etcd alarm raised: %s" % ", ".join(raised),
                           "NOSPACE: compact and defragment (etcdctl compact/defrag), raise --quota-backend-bytes "
                           "if needed, then `etcdctl alarm disarm`" if nospace else
                           "CORRUPT: take the member out and re-add it from a healthy one",
                           "kubectl " + etcdctl_args(node, "alarm list"), "\n".join(raised), where))
    return out


# -- certificates -------------------------------------------------------------------------------------------
def cert_dates_script(paths):
    return ("for f in %s; do [ -f \"$f\" ] && echo \"$f $(openssl x509 -noout -enddate -in \"$f\" 2>&1)\"; done; "
            "date +%%s" % " ".join(paths))


def parse_enddate(text):
    """'notAfter=Dec  1 05:36:51 2027 GMT' -> epoch seconds, or None."""
    m = re.search(r"notAfter=(\w{3})\s+(\d+) (\d\d:\d\d:\d\d) (\d{4})", text)
    if not m:
        return None
    try:
        t = time.strptime("%s %s %s %s" % m.groups(), "%b %d %H:%M:%S %Y")
    except ValueError:  # a garbled line: no date
        return None
    return calendar.timegm(t)


def classify_cert_dates(text, host, command="openssl x509 -noout -enddate -in"):
    """The output of cert_dates_script: one 'PATH notAfter=...' line per certificate, then the host's clock.
    Each finding's evidence is `command PATH`."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    try:
        now = int(lines[-1])
        lines = lines[:-1]
    except (ValueError, IndexError):
        now = int(time.time())
    out = []
    for ln in lines:
        path, _, rest = ln.partition(" ")
        end = parse_enddate(rest)
        if end is None:
            continue
        days = (end - now) / 86400.0
        if days < 0:
            out.append(finding("CERT-EXPIRED", ERROR, LAYER, "%s:%s" % (host, path),
                               "the certificate expired %d day(s) ago" % int(-days), _cert_fix(path),
                               "%s %s" % (command, path), ln, host))
        elif days < CERT_WARN_DAYS:
            out.append(finding("CERT-EXPIRING", ERROR if days < CERT_ERROR_DAYS else WARNING, LAYER,
                               "%s:%s" % (host, path), "the certificate expires in %d day(s)" % int(days),
                               _cert_fix(path), "%s %s" % (command, path), ln, host))
    return out


CHECK_EXPIRATION = "kubeadm certs check-expiration"


def classify_check_expiration(text, now, host):
    """`kubeadm certs check-expiration`: the kubeconfig files' embedded client certificates (*.conf), which
    openssl on the PKI directory does not see. Lines: NAME  Mon DD, YYYY HH:MM UTC  RESIDUAL  [CA]  no."""
    out = []
    for ln in text.splitlines():
        m = re.match(r"^(\S+\.conf)\s+(\w{3} \d{2}, \d{4} \d{2}:\d{2}) UTC", ln)
        if not m:
            continue
        try:
            end = calendar.timegm(time.strptime(m.group(2), "%b %d, %Y %H:%M"))
        except ValueError:  # a garbled line: no date
            continue
        days = (end - now) / 86400.0
        target = "%s:/etc/kubernetes/%s" % (host, m.group(1))
        if days < 0:
            out.append(finding("CERT-EXPIRED", ERROR, LAYER, target, "the client certificate in %s expired %d "
                               "day(s) ago" % (m.group(1), int(-days)), _cert_fix(m.group(1)), CHECK_EXPIRATION,
                               ln.rstrip(), host))
        elif days < CERT_WARN_DAYS:
            out.append(finding("CERT-EXPIRING", ERROR if days < CERT_ERROR_DAYS else WARNING, LAYER, target,
                               "the client certificate in %s expires in %d day(s)" % (m.group(1), int(days)),
                               _cert_fix(m.group(1)), CHECK_EXPIRATION, ln.rstrip(), host))
    return out


def _cert_fix(path):
    if path.startswith(C.PKI_DIR):
        return "Renew the registry certificate (./install.py certs renew, see docs/installer.md)"
    if "/var/lib/kubelet/pki" in path:
        return ("The kubelet rotates its own certificates (rotateCertificates: true); if it cannot, delete "
                "/var/lib/kubelet/pki/kubelet-client-* and rejoin, or renew with ./install.py certs renew")
    return "Renew the kubeadm certificates one control plane at a time (./install.py certs renew, or kubeadm " \
           "certs renew all and restart the control-plane pods)"


# -- static pods vs kubeadm's configuration ------------------------------------------------------------------
def manifests_script():
    return "for f in %s/*.yaml; do [ -f \"$f\" ] && echo \"$f $(grep -m1 'image:' \"$f\")\"; done" % MANIFESTS


def kubernetes_version_of(config_text):
    m = re.search(r"(?m)^\s*kubernetesVersion:\s*[\"']?(v?[0-9][^\"'\s]*)", config_text or "")
    return m.group(1) if m else None


def classify_static_pods(text, version, host, command, source):
    """Static pod manifests' images (from manifests_script) against kubeadm's kubernetesVersion."""
    out = []
    if not version:
        return out
    want = version if version.startswith("v") else "v" + version
    for ln in text.splitlines():
        path, _, image = ln.partition(" ")
        image = image.replace("image:", "").strip().strip("'\"")
        name = path.rsplit("/", 1)[-1][:-5]
        if name not in CONTROL_PLANE_PODS or not image:
            continue
        tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else "latest"
        if tag != want:
            out.append(finding("STATIC-POD-VERSION-SKEW", ERROR, LAYER, "%s:%s" % (host, path),
                               "%s runs %s but kubeadm's configuration (%s) says %s" % (name, tag, source, want),
                               "A half-done upgrade: finish it (kubeadm upgrade apply/node to %s) or restore the "
                               "manifest from /etc/kubernetes/tmp/kubeadm-backup-manifests-*" % want,
                               command, ln, host))
    return out


# -- version skew ---------------------------------------------------------------------------------------------
def _minor(v):
    m = re.match(r"v?(\d+)\.(\d+)", v or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def classify_skew(server_version, nodes_json, command):
    """kubelet versions of the nodes against the API server's: never newer, at most 3 minors older."""
    out = []
    api = _minor(server_version)
    if api is None:
        return out
    for item in (nodes_json or {}).get("items", []):
        name = item["metadata"]["name"]
        kv = ((item.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", "")
        k = _minor(kv)
        if k is None:
            continue
        if k > api:
            out.append(finding("VERSION-SKEW", ERROR, LAYER, "node/%s" % name, "kubelet %s is newer than the API "
                               "server %s (not supported)" % (kv, server_version),
                               "Upgrade the control planes first, or downgrade this node's kubelet to %s"
                               % server_version, command,
                               "%s kubeletVersion=%s; server %s" % (name, kv, server_version)))
        elif api[0] == k[0] and api[1] - k[1] > 3:
            out.append(finding("VERSION-SKEW", ERROR, LAYER, "node/%s" % name, "kubelet %s is more than 3 minor "
                               "versions older than the API server %s" % (kv, server_version),
                               "Upgrade this node (./install.py upgrade)", command,
                               "%s kubeletVersion=%s; server %s" % (name, kv, server_version)))
        elif k != api:
            out.append(finding("VERSION-SKEW", INFO, LAYER, "node/%s" % name, "kubelet %s differs from the API "
                               "server %s (within the supported skew)" % (kv, server_version),
                               "Finish the upgrade of this node when convenient", command,
                               "%s kubeletVersion=%s; server %s" % (name, kv, server_version)))
    return out


# -- the bundled registry -------------------------------------------------------------------------------------
def registry_script(registry, refs):
    """One HEAD per image of the bundle against the bundled registry, with the installer's CA: 'CODE REF'."""
    parts = []
    for ref in refs:
        url = manifest_url(registry, ref)
        parts.append("echo \"$(curl -s -o /dev/null -I -w '%%{http_code}' --max-time 10 --cacert %s -H %s %s) %s\""
                     % (C.CA_CERT, quote("Accept: " + MANIFEST_ACCEPT), quote(url), ref))
    return "; ".join(parts) if parts else "true"


def manifest_url(registry, ref):
    host, repo, tag = split_ref(ref)
    return "https://%s/v2/%s/%s/manifests/%s" % (registry, host, repo, tag[1:] if tag.startswith("@") else tag)


def classify_registry(text, registry, host):
    out = []
    for ln in text.splitlines():
        code, _, ref = ln.strip().partition(" ")
        if not ref:
            continue
        curl = "curl -sI --cacert %s %s" % (C.CA_CERT, manifest_url(registry, ref))
        if code == "404":
            out.append(finding("REGISTRY-IMAGE-MISSING", ERROR, LAYER, ref, "the bundled registry %s has no %s"
                               % (registry, ref), "Put the bundle's images back: ./install.py (the registry phase "
                               "lays them out again from the bundle; it changes nothing else when all is done)",
                               curl, ln, host))
        elif code != "200":
            out.append(finding("REGISTRY-UNREACHABLE", ERROR, LAYER, registry, "the bundled registry answered %s "
                               "for %s" % (code, ref), "Check airgap-registry.service on %s (systemctl status "
                               "airgap-registry; journalctl -u airgap-registry)" % host, curl, ln, host))
    if len(out) > 1 and all(f.id == "REGISTRY-UNREACHABLE" for f in out):
        first = out[0]
        first.summary = "the bundled registry did not answer for %d image(s)" % len(out)
        return [first]
    return out


# -- the layer ------------------------------------------------------------------------------------------------
@layer_check(LAYER)
def check(env, state):
    """All cluster findings. `state` collects what other layers reuse (nodes JSON, server version)."""
    out = []
    where = env.kube_host.label if env.kube_host else None
    rc, text, err = env.kubectl(READYZ)
    out += classify_readyz(rc, text, err, where)
    api_ok = rc == 0
    nodes_cmd = "get nodes -o json"
    rc, text, err = env.kubectl(nodes_cmd) if api_ok else (1, "", "")
    state["nodes_json"] = _json(text) if rc == 0 else None
    state["nodes_cmd"] = "kubectl " + nodes_cmd
    rc, text, _ = env.kubectl(VERSION) if api_ok else (1, "", "")
    server = (_json(text) or {}).get("gitVersion") if rc == 0 else None
    state["server_version"] = server
    # etcd, on every control plane that answers (stacked etcd: the pod etcd-<node>)
    if api_ok:
        for h in env.control_planes:
            node = env.node_name(h)
            out += classify_etcd(node, env.kubectl(etcdctl_args(node, "endpoint health -w json")),
                                 env.kubectl(etcdctl_args(node, "alarm list")), where)
    # certificates: kubeadm's on control planes, the kubelet's everywhere, the registry's on the serving host
    for h in env.hosts:
        paths = list(CERT_GLOBS) if h.role == ROLE_CONTROL_PLANE else list(CERT_GLOBS[2:])
        if h is env.ctx.serve_host:
            paths += list(REGISTRY_CERTS)
        script = cert_dates_script(paths)
        rc, text = env.run(h.label, script)
        out += classify_cert_dates(text, h.label)
        if h.role == ROLE_CONTROL_PLANE:
            rc, text = env.run(h.label, "%s 2>&1; date +%%s" % CHECK_EXPIRATION)
            lines = text.strip().splitlines()
            if lines and lines[-1].isdigit():
                out += classify_check_expiration(text, int(lines[-1]), h.label)
    # static pod images against kubeadm's configuration (the ConfigMap, else the installer's kubeadm.yaml)
    version, source = None, None
    if api_ok:
        rc, text, _ = env.kubectl("-n kube-system get configmap kubeadm-config -o json")
        data = (_json(text) or {}).get("data") or {} if rc == 0 else {}
        version = kubernetes_version_of(data.get("ClusterConfiguration"))
        source = "ConfigMap kube-system/kubeadm-config"
    for h in env.control_planes:
        v, s = version, source
        if not v:
            rc, text = env.run(h.label, "cat %s" % KUBEADM_CONFIG)
            v, s = (kubernetes_version_of(text), KUBEADM_CONFIG) if rc == 0 else (None, None)
        rc, text = env.run(h.label, manifests_script())
        out += classify_static_pods(text, v, h.label, "grep -m1 image: %s/*.yaml" % MANIFESTS, s)
    if server and state["nodes_json"]:
        out += classify_skew(server, state["nodes_json"], state["nodes_cmd"])
    # the registry holds every image of the bundle
    serve = env.ctx.serve_host
    if serve.label in env.connections and env.ctx.bundle.images:
        refs = [i["ref"] for i in env.ctx.bundle.images]
        rc, text = env.run(serve.label, registry_script(env.ctx.registry, refs), timeout=300)
        out += classify_registry(text, env.ctx.registry, serve.label)
    if not out:
        state["cluster_ok"] = True
    return out


def _json(text):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None
