"""registry: the bundled registry on the serving host, TLS with an installer-made CA, filled from the
bundle's OCI store by laying out its storage (installer.registry_layout). With --registry (your own
registry, installer.extregistry) none of that is installed: the phase checks that registry before any host
changes and pushes the images it lacks."""

import os
import time

from installer import constants as C
from installer.changes import Callback, Command, PutFile, Service, WriteFile
from installer.errors import InstallerError
from installer.phases.base import Phase, firewall_change
from installer.render import registry as reg_render
from installer.render import systemd
from installer.ssh import quote

BINARY = "/usr/local/bin/airgap-registry"
PUBLIC_CFG = reg_render.CONFIG_DIR + "/config.yml"
PUSH_CFG = reg_render.CONFIG_DIR + "/push.yml"
HTPASSWD = reg_render.CONFIG_DIR + "/htpasswd"
CREDENTIALS = reg_render.CONFIG_DIR + "/push-credentials"
PUBLIC_UNIT = systemd.UNIT_DIR + "/airgap-registry.service"
PUSH_UNIT = systemd.UNIT_DIR + "/airgap-registry-push.service"
CERT = C.PKI_DIR + "/registry.crt"
KEY = C.PKI_DIR + "/registry.key"
PUSH_USER = "airgap-push"


def pki_script(address, hostname):
    """Make the CA and the registry's server certificate (openssl 1.0.2 compatible: no -addext)."""
    san = "IP:%s,IP:127.0.0.1,DNS:localhost" % address
    if hostname:
        san += ",DNS:%s" % hostname
    return " && ".join([
        "set -e", "umask 077", "mkdir -p %s" % C.PKI_DIR, "cd %s" % C.PKI_DIR,
        "openssl genrsa -out ca.key 4096 2>/dev/null",
        "openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj '/CN=airgap-installer registry CA' -out ca.crt",
        "openssl genrsa -out registry.key 2048 2>/dev/null",
        "openssl req -new -key registry.key -subj '/CN=%s' -out registry.csr" % address,
        "printf 'subjectAltName=%s\\nextendedKeyUsage=serverAuth\\nbasicConstraints=CA:FALSE\\n' > ext.cnf" % san,
        "openssl x509 -req -in registry.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -sha256 "
        "-extfile ext.cnf -out registry.crt 2>/dev/null",
        "chmod 644 ca.crt registry.crt",
    ])


def bcrypt_hash(password, conn=None):
    """bcrypt for the registry's htpasswd: libxcrypt via the crypt module, else `htpasswd -nbB`."""
    try:
        import crypt  # deprecated in 3.11, absent in 3.13; present on every EL python3
        method = getattr(crypt, "METHOD_BLOWFISH", None)
        if method is not None:
            h = crypt.crypt(password, crypt.mksalt(method))
            if h and h.startswith("$2"):
                return h
    except ImportError:
        pass
    if conn is not None:
        res = conn.run("htpasswd -nbB %s %s" % (PUSH_USER, quote(password)), check=False)
        if res.ok and ":" in res.stdout:
            return res.stdout.strip().split(":", 1)[1]
    raise InstallerError("cannot make a bcrypt password hash for the registry (no bcrypt in this Python's "
                         "crypt module and no htpasswd)", phase="registry",
                         hint="Install httpd-tools from the OS media (yum --disablerepo='*' --enablerepo="
                              "'airgap-*' install httpd-tools) and run ./install.py again")


def read_ca(ctx):
    """ctx.ca_pem: the registry CA from the serving host, if the registry phase made it (None before); with
    your own registry, the CA given with --registry-ca (None: the system trust store is enough)."""
    if ctx.own_registry is not None:
        ctx.ca_pem = ctx.own_registry.ca
        return
    serve_conn = ctx.connections.get(ctx.serve_host.label)
    if serve_conn is not None:
        ca = serve_conn.read_file(C.CA_CERT)
        ctx.ca_pem = ca.decode("utf-8") if ca is not None else None


def make_credentials(conn, journal):
    if conn.exists(CREDENTIALS) and conn.exists(HTPASSWD):
        return False
    import binascii
    password = binascii.hexlify(os.urandom(24)).decode("ascii")
    journal.remember_file(CREDENTIALS)
    journal.remember_file(HTPASSWD)
    conn.write_file(HTPASSWD, "%s:%s\n" % (PUSH_USER, bcrypt_hash(password, conn)), 0o600)
    conn.write_file(CREDENTIALS, "%s:%s\n" % (PUSH_USER, password), 0o600)
    return True


def push_images(ctx, conn, journal, wait=60):
    """Push the bundle's images/ to the push instance on 127.0.0.1 (the serving host is local)."""
    from installer.registry_push import Layout, Pusher, Registry
    creds = conn.read_file(CREDENTIALS).decode("utf-8").strip()
    user, password = creds.split(":", 1)
    reg = Registry("https://127.0.0.1:%d" % C.PUSH_PORT, user, password, cafile=conn.path(C.CA_CERT))
    deadline = time.time() + wait
    while True:
        try:
            if reg.ping() in (200, 401):
                break
        except InstallerError:
            pass
        if time.time() > deadline:
            raise InstallerError("the registry push service did not answer on 127.0.0.1:%d within %d s"
                                 % (C.PUSH_PORT, wait), phase="registry",
                                 command="systemctl status airgap-registry-push",
                                 hint="See journalctl -u airgap-registry-push")
        time.sleep(1)
    pusher = Pusher(reg, Layout(ctx.bundle.path("images")), log=ctx.log)
    pusher.push_all(docker_bare=(ctx.bundle.runtime == "docker"))
    journal.set_pushed(ctx.bundle_id, reg.stats)
    ctx.log("registry push: %(blobs_uploaded)d blobs uploaded, %(blobs_skipped)d already present, "
            "%(blobs_mounted)d mounted, %(manifests)d manifests" % reg.stats)
    return reg.stats["blobs_uploaded"] + reg.stats["manifests"] > 0


def fill_registry(ctx, conn, journal):
    """Put the bundle's images into the registry. Its storage is on this machine (the serving host runs
    install.py), so they are laid out there directly: no HTTP, no bcrypt check per request, blobs hard-linked
    from the bundle (bench/registry_populate.py: ~50x faster than the push on 1 GB). The registry keeps no
    cache in our configuration and every file lands by rename, blobs before the tags naming them, so this is
    safe while it runs. A remote serving host would get the HTTP push."""
    if not conn.is_local:
        return push_images(ctx, conn, journal)
    from installer.registry_layout import lay_out
    from installer.registry_push import Layout
    storage = lay_out(Layout(ctx.bundle.path("images")), conn.path(reg_render.STORAGE),
                      docker_bare=(ctx.bundle.runtime == "docker"), log=ctx.log)
    journal.set_pushed(ctx.bundle_id, storage.stats)
    ctx.log("registry storage: %(blobs_linked)d blobs linked from the bundle, %(blobs_copied)d copied, "
            "%(blobs_present)d already there, %(manifests)d manifests" % storage.stats)
    return storage.stats["changed"] > 0


def own_registry_preflight(ctx):
    """--registry: reachable, TLS trusted, the images it lacks listed, and (when some are missing) credentials
    allowed to push, before any host changes. Raises naming the fix."""
    own = ctx.own_registry
    if ctx.bundle.runtime == "docker" and own.target.prefix:
        raise InstallerError("--registry %s: with the docker runtime the registry cannot have a path (%s): docker's "
                             "registry-mirrors take a host only, so docker.io images would not be found"
                             % (own.target.path, own.target.prefix), phase="registry",
                             hint="Give the registry without a path (--registry %s), or use a containerd bundle. "
                                  "Nothing was changed on any host" % own.target.address)
    recorded = ((ctx.previous_record or {}).get("registry") or {}).get("ca_sha256")
    if recorded and own.ca and own.ca_fingerprint != recorded:
        ctx.log("note: the registry CA %s (SHA-256 %s) is not the one recorded at install (%s); the hosts get "
                "this one" % (own.ca_file, own.ca_fingerprint, recorded))
    reg = own.preflight(push=False)
    from installer.registry_push import Layout, Pusher
    pusher = Pusher(reg, Layout(ctx.bundle.path("images")), prefix=own.target.prefix)
    first = pusher.selected()[:1]
    if first:
        own.check_anonymous_pull(first[0][2], first[0][3])
    ctx.own_missing = [m for m in pusher.missing(docker_bare=(ctx.bundle.runtime == "docker")) if m[2] or m[3]]
    if ctx.own_missing and own.credentials is None:
        raise InstallerError("%d of the bundle's images are missing in your registry %s (e.g. %s) and no "
                             "--registry-credentials were given to push them" % (
                                 len(ctx.own_missing), own.target.path, ctx.own_missing[0][0]), phase="registry",
                             hint="Give --registry-credentials FILE (user:password, with push permission), or "
                                  "push them first with ./install.py push-images --to %s. Nothing was changed on "
                                  "any host" % own.target.path)
    if ctx.own_missing:
        own.preflight(reg, push=True)
    ctx.log("your registry %s: reachable, TLS %s, %s" % (
        own.target.path, "trusted with CA %s" % own.ca_fingerprint if own.ca else "trusted by the system store",
        "%d image(s) to push (credentials accepted for push)" % len(ctx.own_missing) if ctx.own_missing else
        "every image of the bundle present"))


def push_to_own(ctx, conn, journal):
    """Push the images your registry lacks (HEAD first: a re-run sends only what is still missing)."""
    from installer.registry_push import Layout, Pusher
    own = ctx.own_registry
    reg = own.client()
    pusher = Pusher(reg, Layout(ctx.bundle.path("images")), log=ctx.log, prefix=own.target.prefix)
    pusher.push_all(docker_bare=(ctx.bundle.runtime == "docker"))
    ctx.log("pushed into %s: %d blob(s) uploaded (%.1f MB), %d already present, %d mounted, %d manifest(s)" % (
        own.target.path, reg.stats["blobs_uploaded"], reg.stats["bytes_uploaded"] / 1e6, reg.stats["blobs_skipped"],
        reg.stats["blobs_mounted"], reg.stats["manifests"]))
    return reg.stats["blobs_uploaded"] + reg.stats["manifests"] > 0


class RegistryPhase(Phase):
    name = "registry"
    title = "local image registry"

    def hosts(self, ctx):
        return [ctx.serve_host]

    def prepare(self, ctx):
        read_ca(ctx)  # from an earlier run: the runtime phase's watched files and plan depend on it
        if ctx.own_registry is not None:
            own_registry_preflight(ctx)

    def after(self, ctx):
        read_ca(ctx)  # the CA now exists

    def watched_files(self, ctx, host):
        if ctx.own_registry is not None:
            return []
        return [PUBLIC_CFG, PUSH_CFG, PUBLIC_UNIT, PUSH_UNIT, C.CA_CERT, CREDENTIALS]

    def plan(self, ctx, host, facts):
        if ctx.own_registry is not None:
            if not ctx.own_missing:
                return []
            return [Callback("push %d image(s) the registry %s lacks (only missing blobs and manifests)"
                             % (len(ctx.own_missing), ctx.own_registry.target.path),
                             lambda conn, j: push_to_own(ctx, conn, j))]
        out = []
        f = ctx.bundle.file("registry")
        if f is None:
            raise InstallerError("the bundle has no 'registry' binary in files[]", phase="registry",
                                 hint="Rebuild the bundle with the registry in the manifest's files")
        src = ctx.bundle.path(f["path"])
        binary = PutFile(src, BINARY, 0o755, f.get("sha256"))
        if facts.bin_sha.get(BINARY) != f.get("sha256"):
            out.append(binary)
        if not facts.has_file(C.CA_CERT):
            out.append(Command(pki_script(ctx.serve_address, facts.hostname),
                               title="make the registry CA and TLS certificate in %s" % C.PKI_DIR,
                               unless="test -f %s" % CERT, undo="rm -rf %s" % reg_render.CONFIG_DIR))
        if not facts.has_file(CREDENTIALS):
            out.append(Callback("generate push credentials in %s (root only)" % CREDENTIALS, make_credentials))
        public = reg_render.config_yml("%s:%d" % (ctx.serve_address, C.REGISTRY_PORT), CERT, KEY, read_only=True)
        push = reg_render.config_yml("127.0.0.1:%d" % C.PUSH_PORT, CERT, KEY, htpasswd=HTPASSWD)
        units = {
            PUBLIC_UNIT: ("airgap-registry", systemd.registry_unit("airgap-registry", BINARY, PUBLIC_CFG,
                                                                   "airgap-installer: image registry (pull only)")),
            PUSH_UNIT: ("airgap-registry-push", systemd.registry_unit(
                "airgap-registry-push", BINARY, PUSH_CFG, "airgap-installer: image registry (push, loopback)")),
        }
        changed_cfg = {}
        for path, content in ((PUBLIC_CFG, public), (PUSH_CFG, push)):
            if facts.file(path) != content:
                out.append(WriteFile(path, content))
                changed_cfg[path] = True
        binary_changed = binary in out
        for path, (svc, unit) in sorted(units.items()):
            cfg = PUBLIC_CFG if svc == "airgap-registry" else PUSH_CFG
            if facts.file(path) != unit:
                out.append(WriteFile(path, unit))
                out.append(Service(svc, restart=True, reload_units=True))
            elif changed_cfg.get(cfg) or binary_changed:
                out.append(Service(svc, restart=True))
            elif not facts.service(svc).get("active"):
                out.append(Service(svc))
        out += firewall_change(facts, ["%d/tcp" % C.REGISTRY_PORT], ctx.options.firewalld, "registry")
        journal = ctx.journals.get(host.label)
        if journal is None or journal.pushed() != ctx.bundle_id:
            n = len(ctx.bundle.images)
            out.append(Callback("push %d image(s) from the bundle into the registry" % n,
                                lambda conn, j: fill_registry(ctx, conn, j)))
        return out

