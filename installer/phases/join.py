"""join: extra control-plane hosts one at a time (with certificates uploaded by the first one), then the
workers in parallel (at most --parallel at once). One short-lived bootstrap token serves the whole operation:
created at the first join, deleted when the operation ends (also after a failure)."""

import threading

from installer import constants as C
from installer.changes import Callback, Command
from installer.errors import InstallerError
from installer.kube import is_joined
from installer.phases.base import Phase
from installer.render import kubeadm as kadm

JOIN_CONFIG = C.KUBE_DIR + "/join.yaml"
CA_HASH_CMD = ("openssl x509 -pubkey -in /etc/kubernetes/pki/ca.crt | openssl rsa -pubin -outform der 2>/dev/null "
               "| openssl dgst -sha256 -hex | sed 's/^.* //'")


TOKEN_TTL = "30m"
_TOKEN_LOCK = threading.Lock()


def operation_token(ctx, cp_conn):
    """The operation's join token, created on first use (joins of one operation share it)."""
    with _TOKEN_LOCK:
        if getattr(ctx, "join_token", None) is None:
            out = cp_conn.check("kubeadm token create --ttl %s" % TOKEN_TTL, "creating a join token")
            ctx.join_token = out.stdout.strip().splitlines()[-1]
        return ctx.join_token


def delete_token(ctx):
    """cleanup: the operation's token is deleted so it cannot be used after the operation."""
    token = getattr(ctx, "join_token", None)
    cp_conn = ctx.connections.get(ctx.first_cp.label)
    if token is None or cp_conn is None:
        return
    res = cp_conn.run("kubeadm token delete %s" % token.split(".")[0], check=False)
    ctx.join_token = None
    if not res.ok:
        ctx.log("note: could not delete the join token %s (it expires after %s by itself): %s" % (
            token.split(".")[0], TOKEN_TTL, res.stderr.strip()[-200:]))


def join_material(cp_conn, control_plane, ctx=None):
    """(token, ca_cert_hash, certificate_key or None) fetched from the first control plane."""
    if ctx is not None:
        token = operation_token(ctx, cp_conn)
    else:
        token = cp_conn.check("kubeadm token create --ttl %s" % TOKEN_TTL,
                              "creating a join token").stdout.strip().splitlines()[-1]
    ca_hash = "sha256:" + cp_conn.check(CA_HASH_CMD, "reading the CA hash").stdout.strip()
    key = None
    if control_plane:
        out = cp_conn.check("kubeadm init phase upload-certs --upload-certs", "uploading control-plane certificates")
        key = out.stdout.strip().splitlines()[-1].strip()
    return token, ca_hash, key


class Join(Phase):
    """Both kinds of join (JoinControlPlanes, JoinWorkers below split them by role)."""

    name = "join"
    title = "join workers and extra control planes"
    parallel = False  # control-plane joins add etcd members one at a time

    def hosts(self, ctx):
        return [h for h in ctx.nodes if h is not ctx.first_cp]

    def cleanup(self, ctx):
        delete_token(ctx)

    def should_run(self, ctx, host, facts):
        return not is_joined(facts)

    def plan(self, ctx, host, facts):
        if is_joined(facts):
            return []
        role = "control plane" if host.is_control_plane else "worker"
        out = [Callback("kubeadm join %s as a %s" % (ctx.api_endpoint, role), lambda conn, j: self.join(ctx, host,
                                                                                                        conn, j))]
        if host.is_control_plane:
            out.append(Command("mkdir -p /root/.kube && cp -f %s %s && chmod 600 %s" % (
                C.ADMIN_CONF, C.ROOT_KUBECONFIG, C.ROOT_KUBECONFIG), title="kubeconfig for root"))
        return out

    def material(self, ctx, host):
        """(token, CA hash, certificate key or None) for this host's join (node apply: from its join file)."""
        cp_conn = ctx.connections.get(ctx.first_cp.label)
        if cp_conn is None:
            raise InstallerError("no connection to the first control plane %s" % ctx.first_cp.label, phase="join")
        return join_material(cp_conn, host.is_control_plane, ctx)

    def join(self, ctx, host, conn, journal):
        token, ca_hash, key = self.material(ctx, host)
        cfg = kadm.join_config(ctx.bundle.k8s_version, ctx.api_endpoint, token, ca_hash, ctx.node_name(host),
                               host.address, runtime=ctx.bundle.runtime, control_plane=host.is_control_plane,
                               certificate_key=key)
        journal.remember_file(JOIN_CONFIG)
        conn.write_file(JOIN_CONFIG, cfg, 0o600)
        journal.add_undo("kubeadm reset -f")
        conn.check("kubeadm join --config %s" % JOIN_CONFIG, "kubeadm join", timeout=1200)
        conn.run("rm -f %s" % JOIN_CONFIG, check=False)  # holds a token
        return True


class JoinControlPlanes(Join):
    title = "join extra control planes (one at a time)"

    def hosts(self, ctx):
        return [h for h in Join.hosts(self, ctx) if h.is_control_plane]


class JoinWorkers(Join):
    title = "join workers (in parallel)"
    parallel = True  # the runner's --parallel bounds how many join at once

    def hosts(self, ctx):
        return [h for h in Join.hosts(self, ctx) if not h.is_control_plane]
