"""Certificate expiry, read from the hosts: kubeadm's own view (`kubeadm certs check-expiration`, parsed), the
kubelet's certificates, the cluster CA and the installer's registry CA and server certificate (openssl
-enddate). Read-only: `certs check`, the warnings of `status`/`plan`, and `doctor` call expiry_report().

A row is a dict: host, source (kubeadm, kubelet, ca, registry), name, path (None for kubeadm's rows), expires
(ISO UTC, None when missing/unreadable), days (whole days left, negative when expired), status (ok, warn,
expired, missing, unreadable) and ca (the signing CA kubeadm names, or "" ).
"""

import datetime
import re

from installer import constants as C
from installer.ssh import quote

WARN_DAYS = 90
KUBEADM_CHECK = "kubeadm certs check-expiration"
KUBE_PKI = "/etc/kubernetes/pki"
KUBELET_PKI = "/var/lib/kubelet/pki"
KUBELET_FILES = ("kubelet.crt", "kubelet-client-current.pem", "kubelet-server-current.pem")
REGISTRY_CERT = C.PKI_DIR + "/registry.crt"

_EXPIRES = r"[A-Z][a-z]{2} \d{1,2}, \d{4} \d{2}:\d{2} UTC"
_ROW = re.compile(r"^(?P<name>\S+)\s+(?P<expires>%s)\s+(?P<residual>\S+)\s+(?:(?P<ca>\S+)\s+)?(?P<ext>yes|no)\s*$"
                  % _EXPIRES)
_MISSING = re.compile(r"^!MISSING!\s+(?P<name>\S+)")


def now_utc():
    return datetime.datetime.utcnow().replace(microsecond=0)


def parse_check_expiration(text):
    """The rows of `kubeadm certs check-expiration` (both tables: certificates, then CAs; the 1.15-1.16 format
    without the CERTIFICATE AUTHORITY column too). Each: name, expires (naive UTC datetime or None), ca,
    authority (a CA row), external, missing. Lines that are not table rows (the [check-expiration] preamble,
    klog warnings) are skipped."""
    rows = []
    authority = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("CERTIFICATE AUTHORITY") and "EXPIRES" in stripped:
            authority = True
            continue
        if stripped.startswith("CERTIFICATE") and "EXPIRES" in stripped:
            authority = False
            continue
        if authority is None or not stripped:
            continue
        m = _MISSING.match(stripped)
        if m:
            rows.append({"name": m.group("name"), "expires": None, "ca": "", "authority": authority,
                         "external": False, "missing": True})
            continue
        m = _ROW.match(stripped)
        if not m:
            continue
        try:
            expires = datetime.datetime.strptime(m.group("expires"), "%b %d, %Y %H:%M UTC")
        except ValueError:  # a date-like column that is no date (a garbled line): not a table row
            continue
        rows.append({"name": m.group("name"), "expires": expires, "ca": m.group("ca") or "",
                     "authority": authority, "external": m.group("ext") == "yes", "missing": False})
    return rows


def parse_enddate(text):
    """`openssl x509 -enddate -noout` ("notAfter=Dec  7 01:42:00 2119 GMT") -> naive UTC datetime, or None."""
    m = re.search(r"notAfter=([A-Z][a-z]{2})\s+(\d{1,2}) (\d{2}:\d{2}:\d{2}) (\d{4}) GMT", text or "")
    if not m:
        return None
    return datetime.datetime.strptime("%s %s %s %s" % m.groups(), "%b %d %H:%M:%S %Y")


def days_left(expires, now=None):
    """Whole days from now until `expires` (negative once expired)."""
    delta = expires - (now or now_utc())
    return int(delta.total_seconds() // 86400)


def status_of(expires, now=None, warn_days=WARN_DAYS):
    if expires is None:
        return "missing"
    d = days_left(expires, now)
    return "expired" if expires <= (now or now_utc()) else ("warn" if d < warn_days else "ok")


def _row(host, source, name, path, expires, now, warn_days, ca="", status=None):
    return {"host": host, "source": source, "name": name, "path": path,
            "expires": expires.strftime("%Y-%m-%dT%H:%M:%SZ") if expires else None,
            "days": days_left(expires, now) if expires else None, "ca": ca,
            "status": status or status_of(expires, now, warn_days)}


def openssl_enddates(conn, paths):
    """{path: naive UTC datetime or None (unreadable)} for the files among `paths` that exist (one command;
    the paths are absolute, read under the connection's root). Empty when the host has no openssl."""
    if not paths:
        return {}
    script = "; ".join(
        "if [ -f {p} ]; then printf '%s\\t' {l}; openssl x509 -enddate -noout -in {p} 2>/dev/null || echo; fi"
        .format(p=quote(conn.path(p)), l=quote(p)) for p in paths)
    # no openssl on the host (a bare one): nothing can be read, which is not the certificates' fault
    res = conn.run("command -v openssl >/dev/null 2>&1 || exit 0; " + script, check=False)
    out = {}
    for line in res.stdout.splitlines():
        if "\t" in line:
            path, _, rest = line.partition("\t")
            out[path] = parse_enddate(rest)
    return out


def kubeadm_rows(conn):
    """kubeadm's rows, or None when kubeadm cannot answer (not installed, no cluster config): the caller then
    reads the files with openssl."""
    res = conn.run(KUBEADM_CHECK, check=False, timeout=120)
    if not res.ok:
        return None
    rows = parse_check_expiration(res.stdout)
    return rows or None


def pki_files(conn):
    """The certificates under /etc/kubernetes/pki (and etcd/), for reading without kubeadm."""
    res = conn.run("ls -1 %s/*.crt %s/etcd/*.crt 2>/dev/null; true" % (quote(conn.path(KUBE_PKI)),
                                                                       quote(conn.path(KUBE_PKI))), check=False)
    root = conn.path("/").rstrip("/")
    return sorted(p[len(root):] if root and p.startswith(root) else p for p in res.stdout.split())


def expiry_report(conn, host="", control_plane=False, serve=False, use_kubeadm=True, now=None,
                  warn_days=WARN_DAYS):
    """Every certificate of one host with its days left (see the module docstring for a row). control_plane:
    kubeadm's certificates and CAs (from `kubeadm certs check-expiration` when use_kubeadm and it answers, else
    every /etc/kubernetes/pki certificate with openssl); otherwise the cluster CA only. serve: the registry CA
    and server certificate. Always the kubelet's certificates that exist."""
    now = now or now_utc()
    rows = []
    paths = [KUBELET_PKI + "/" + f for f in KUBELET_FILES]
    kube = kubeadm_rows(conn) if (control_plane and use_kubeadm) else None
    if kube is not None:
        for r in kube:
            rows.append(_row(host, "ca" if r["authority"] else "kubeadm", r["name"], None, r["expires"], now,
                             warn_days, ca=r["ca"], status="missing" if r["missing"] else None))
        pki = []
    else:
        pki = pki_files(conn) if control_plane else [KUBE_PKI + "/ca.crt"]
    if serve:
        paths += [C.CA_CERT, REGISTRY_CERT]
    dates = openssl_enddates(conn, pki + paths)
    for p in pki + paths:
        if p not in dates:
            continue
        if p.startswith(C.PKI_DIR):
            source, name = "registry", "registry CA" if p == C.CA_CERT else "registry server"
        elif p.startswith(KUBELET_PKI):
            source, name = "kubelet", p.rsplit("/", 1)[1]
        else:
            name = p[len(KUBE_PKI) + 1:-4].replace("/", "-")  # etcd/server.crt -> etcd-server, as kubeadm says
            source = "ca" if name.endswith("ca") else "kubeadm"
        rows.append(_row(host, source, name, p, dates[p], now, warn_days,
                         status=None if dates[p] else "unreadable"))
    return rows


def host_report(ctx, host, use_kubeadm=True, now=None, warn_days=WARN_DAYS):
    """expiry_report() for an inventory host with its open connection (ctx.connections)."""
    return expiry_report(ctx.connections[host.label], host.label, control_plane=host.is_control_plane,
                         serve=ctx.is_serve_host(host), use_kubeadm=use_kubeadm, now=now, warn_days=warn_days)


def describe(row):
    if row["status"] == "missing":
        return "%s %s: missing" % (row["source"], row["name"])
    if row["status"] == "unreadable":
        return "%s %s (%s): not a readable certificate" % (row["source"], row["name"], row["path"])
    when = "expired %d day(s) ago" % -row["days"] if row["status"] == "expired" else "%d day(s) left" % row["days"]
    return "%s %s: %s (%s)" % (row["source"], row["name"], when, row["expires"])


def warnings(ctx, hosts=None, now=None):
    """[(host label, text)] for the certificates below WARN_DAYS or expired on `hosts` (default: every reachable
    host), read with openssl only (status and plan: no kubeadm call, nothing logged by anything)."""
    out = []
    for h in hosts or ctx.all_hosts:
        if h.label in ctx.skipped or h.label not in ctx.connections:
            continue
        for r in host_report(ctx, h, use_kubeadm=False, now=now):
            if r["status"] in ("warn", "expired", "unreadable"):
                out.append((h.label, "warning: certificate %s; renew with ./install.py certs renew%s" % (
                    describe(r), " (kubelet certificates: see docs/installer.md, certs)" if r["source"] == "kubelet"
                    else "")))
    return out


def table(rows):
    """Rows as an aligned text table."""
    head = ("HOST", "SOURCE", "CERTIFICATE", "EXPIRES", "DAYS LEFT", "STATUS")
    lines = [head] + [(r["host"], r["source"], r["name"], r["expires"] or "-",
                       "-" if r["days"] is None else str(r["days"]), r["status"]) for r in rows]
    widths = [max(len(x[i]) for x in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(x, widths)).rstrip() for x in lines)
