"""certs check / renew / timer: the phases (installer.commands.certs runs them).

renew goes one control plane at a time (a serial phase: the next host starts only when the previous one is
back): `kubeadm certs renew all`, then each static pod restarted one by one (installer.static_pods), waiting
for it each time, then root's kubeconfig refreshed from the renewed admin.conf. On the serving host the
registry's server certificate is re-issued from the installer's CA (same key, same names) and the registry
restarted. Progress is kept in each host's journal (key certs_renew), so a re-run after a failure resumes at
the pod it stopped at instead of renewing again.
"""

import socket
import time

from installer import certs
from installer import constants as C
from installer import static_pods
from installer.errors import InstallerError
from installer.phases.base import Phase
from installer.render import systemd
from installer.ssh import quote

STATE_KEY = "certs_renew"
TIMER_NAME = "airgap-certs"
TIMER_UNIT = systemd.UNIT_DIR + "/%s.timer" % TIMER_NAME
TIMER_SERVICE = systemd.UNIT_DIR + "/%s.service" % TIMER_NAME
REGISTRY_SERVICES = ("airgap-registry", "airgap-registry-push")


class CertsCheck(Phase):
    """Every host's certificates with the days left (a check: reads only)."""

    name = "certs_check"
    title = "certificates"
    kind = "check"

    def hosts(self, ctx):
        return ctx.all_hosts

    def check(self, ctx):
        rows = []
        for h in ctx.all_hosts:
            if h.label in ctx.skipped:
                continue
            rows += certs.host_report(ctx, h, warn_days=ctx.certs_warn_days)
        ctx.cert_rows = rows
        return [] if getattr(ctx, "certs_json", False) else [(None, certs.table(rows))]


def needs_renewal(ctx, host, source):
    """With --within DAYS: has this host a certificate of `source` (kubeadm: kubeadm's on a control plane;
    registry: the registry server certificate) with fewer than DAYS left? Without --within: always."""
    within = getattr(ctx, "certs_within", None)
    if within is None:
        return True
    rows = (getattr(ctx, "cert_reports", None) or {}).get(host.label) or []
    return any(r["source"] == source and r["days"] is not None and r["days"] < within and
               (source != "registry" or r["name"] == "registry server") for r in rows)


def read_reports(ctx):
    """--within: every reachable host's certificates, read once before anything changes."""
    if getattr(ctx, "cert_reports", None) is not None or getattr(ctx, "certs_within", None) is None:
        return
    ctx.cert_reports = dict((h.label, certs.host_report(ctx, h)) for h in ctx.all_hosts
                            if h.label in ctx.connections and h.label not in ctx.skipped)


class RenewControlPlane(Phase):
    name = "certs_renew"
    title = "renew kubeadm certificates, one control plane at a time"
    parallel = False
    resume_hint = "Fix the cause and run ./install.py certs renew again: it resumes at the pod it stopped at"

    def prepare(self, ctx):
        read_reports(ctx)

    def hosts(self, ctx):
        return [h for h in ctx.inventory.control_planes if needs_renewal(ctx, h, "kubeadm")]

    def steps(self, conn, journal):
        """What is left to do on this host: ('renew', None), ('restart', pod)..., ('kubeconfig', None)."""
        state = journal.data.get(STATE_KEY) or {}
        out = [] if state.get("renewed") else [("renew", None)]
        done = set(state.get("restarted") or [])
        out += [("restart", p) for p in static_pods.present(conn) if p not in done]
        return out + [("kubeconfig", None)]

    def dry_run(self, ctx, host, facts, conn=None):
        out = []
        for step, pod in self.steps(conn, ctx.journals[host.label]):
            if step == "renew":
                out.append("kubeadm certs renew all")
            elif step == "restart":
                out.append("restart the static pod %s (manifest out, wait until gone, back, wait until ready)" % pod)
            elif conn.exists(C.ROOT_KUBECONFIG):
                out.append("refresh %s from the renewed %s" % (C.ROOT_KUBECONFIG, C.ADMIN_CONF))
        return out

    def run(self, ctx, host, conn, facts, journal, report=None):
        report = report or (lambda text: None)
        state = journal.data.setdefault(STATE_KEY, {})
        state.setdefault("started", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        journal.save()
        done = []
        for step, pod in self.steps(conn, journal):
            if step == "renew":
                conn.check("kubeadm certs renew all", "kubeadm certs renew all", timeout=300)
                state["renewed"] = True
                journal.save()
                done.append("kubeadm certs renew all")
            elif step == "restart":
                static_pods.restart(conn, pod, ctx.pod_stop_timeout, ctx.pod_start_timeout)
                state.setdefault("restarted", []).append(pod)
                journal.save()
                done.append("restarted %s" % pod)
            elif conn.exists(C.ROOT_KUBECONFIG):
                conn.check("cp -f %s %s" % (C.ADMIN_CONF, C.ROOT_KUBECONFIG), "refreshing root's kubeconfig")
                done.append("refreshed %s" % C.ROOT_KUBECONFIG)
            if done:
                report(done[-1])
        journal.data.pop(STATE_KEY, None)
        journal.data["certs_renewed"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        journal.save()
        return done


def registry_reissue_script(address, hostname, days=3650):
    """Re-issue the registry's server certificate from the installer's CA, same key and names (openssl 1.0.2
    compatible); the old one is kept as registry.crt.before-renew."""
    san = "IP:%s,IP:127.0.0.1,DNS:localhost" % address
    if hostname:
        san += ",DNS:%s" % hostname
    return " && ".join([
        "set -e", "umask 077", "cd %s" % C.PKI_DIR,
        "printf 'subjectAltName=%s\\nextendedKeyUsage=serverAuth\\nbasicConstraints=CA:FALSE\\n' > ext.cnf" % san,
        "openssl req -new -key registry.key -subj '/CN=%s' -out registry.csr" % address,
        "openssl x509 -req -in registry.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days %d -sha256 "
        "-extfile ext.cnf -out registry.crt.new 2>/dev/null" % days,
        "cp -f registry.crt registry.crt.before-renew", "chmod 644 registry.crt.new",
        "mv -f registry.crt.new registry.crt",
    ])


def wait_port(address, port, timeout=60):
    deadline = time.time() + timeout
    while True:
        try:
            socket.create_connection((address, port), timeout=3).close()
            return True
        except (OSError, socket.error):
            if time.time() >= deadline:
                return False
            time.sleep(1)


class RenewRegistry(Phase):
    name = "certs_renew_registry"
    title = "renew the registry's server certificate"

    def prepare(self, ctx):
        read_reports(ctx)

    def hosts(self, ctx):
        return [ctx.serve_host] if needs_renewal(ctx, ctx.serve_host, "registry") else []

    def dry_run(self, ctx, host, facts, conn=None):
        if conn is not None and not conn.exists(C.PKI_DIR + "/registry.crt"):
            return []
        return ["re-issue %s/registry.crt from the installer's CA (same key and names), restart %s" % (
            C.PKI_DIR, " and ".join(REGISTRY_SERVICES))]

    def run(self, ctx, host, conn, facts, journal, report=None):
        if not self.dry_run(ctx, host, facts, conn):
            return []
        conn.check(registry_reissue_script(ctx.serve_address, facts.hostname), "re-issuing the registry certificate")
        for svc in REGISTRY_SERVICES:
            if facts.service(svc).get("exists"):
                conn.check("systemctl restart %s" % svc, "restarting %s" % svc)
        if not wait_port(ctx.serve_address, C.REGISTRY_PORT):
            raise InstallerError("the registry does not answer on %s:%d after its restart"
                                 % (ctx.serve_address, C.REGISTRY_PORT), command="systemctl status airgap-registry",
                                 hint="See journalctl -u airgap-registry; the previous certificate is %s/"
                                      "registry.crt.before-renew" % C.PKI_DIR)
        return ["re-issued the registry certificate and restarted the registry"]


def timer_units(install_py, within):
    service = ("[Unit]\nDescription=airgap-installer: renew certificates expiring within %d days\n"
               "After=network-online.target\n\n[Service]\nType=oneshot\n"
               "ExecStart=/usr/bin/python3 %s certs renew --within %d -y\n" % (within, install_py, within))
    timer = ("[Unit]\nDescription=airgap-installer: monthly certificate check and renewal\n\n[Timer]\n"
             "OnCalendar=monthly\nPersistent=true\nRandomizedDelaySec=1h\n\n[Install]\nWantedBy=timers.target\n")
    return service, timer


class Timer(Phase):
    """certs timer --enable|--disable on the serving host (it holds the cluster record and reaches every host)."""

    name = "certs_timer"
    title = "certificate renewal timer"
    journaled = False

    def hosts(self, ctx):
        return [ctx.serve_host]

    def watched_files(self, ctx, host):
        return [TIMER_UNIT, TIMER_SERVICE]

    def dry_run(self, ctx, host, facts, conn=None):
        service, timer = timer_units(ctx.install_py, ctx.certs_within_timer)
        if ctx.timer_enable:
            active = conn is not None and conn.run("systemctl is-active %s.timer" % TIMER_NAME, check=False).ok
            if facts.file(TIMER_SERVICE) == service and facts.file(TIMER_UNIT) == timer and active:
                return []
            return ["write %s and %s, enable and start %s.timer (monthly: certs renew --within %d)" % (
                TIMER_SERVICE, TIMER_UNIT, TIMER_NAME, ctx.certs_within_timer)]
        if facts.file(TIMER_UNIT) is None and facts.file(TIMER_SERVICE) is None:
            return []
        return ["disable and stop %s.timer, remove %s and %s" % (TIMER_NAME, TIMER_UNIT, TIMER_SERVICE)]

    def run(self, ctx, host, conn, facts, journal, report=None):
        todo = self.dry_run(ctx, host, facts, conn)
        if not todo:
            return []
        if ctx.timer_enable:
            service, timer = timer_units(ctx.install_py, ctx.certs_within_timer)
            for path, text in ((TIMER_SERVICE, service), (TIMER_UNIT, timer)):
                journal.remember_file(path)  # reset removes them
                conn.write_file(path, text)
            journal.add_undo("systemctl disable --now %s.timer" % TIMER_NAME)
            conn.check("systemctl daemon-reload && systemctl enable --now %s.timer" % TIMER_NAME,
                       "enabling %s.timer" % TIMER_NAME)
        else:
            conn.run("systemctl disable --now %s.timer" % TIMER_NAME, check=False)
            conn.check("rm -f %s %s && systemctl daemon-reload" % (quote(conn.path(TIMER_UNIT)),
                                                                  quote(conn.path(TIMER_SERVICE))),
                       "removing the timer units")
            for path in (TIMER_UNIT, TIMER_SERVICE):
                journal.data["files"].pop(path, None)
            journal.save()
        return todo
