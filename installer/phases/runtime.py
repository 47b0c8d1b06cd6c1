"""container runtime: containerd (or docker + cri-dockerd) and kubeadm/kubelet/kubectl, from the
bundle's RPMs or, for `install: binaries` bundles, its static binaries with units the installer writes."""

import os

from installer import constants as C
from installer import pins
from installer.changes import Callback, Command, InstallPackages, PutFile, Service, WriteFile
from installer.phases.base import Phase
from installer.render import containerd as ctd
from installer.render import docker as dkr
from installer.render import kubeadm as kadm
from installer.render import systemd
from installer.ssh import quote

CONTAINERD_CONFIG = "/etc/containerd/config.toml"
DAEMON_JSON = "/etc/docker/daemon.json"
CRI_DOCKER_DROPIN = systemd.UNIT_DIR + "/cri-docker.service.d/10-airgap.conf"
CRICTL_YAML = "/etc/crictl.yaml"
BIN_DIR = "/usr/local/bin"
KUBE_PACKAGES = ("kubeadm", "kubelet", "kubectl")
# What the kubelet/kubeadm RPMs would have pulled in; with bare binaries the installer installs it
# from the OS media itself.
BINARY_HOST_DEPS = ("conntrack", "socat", "ethtool", "iptables", "iproute", "tar")
# binaries (install: binaries) the installer knows where to put
KNOWN_BINARIES = ("containerd", "containerd-shim-runc-v2", "ctr", "runc", "kubeadm", "kubelet", "kubectl",
                  "crictl", "dockerd", "docker", "docker-init", "docker-proxy", "cri-dockerd")


def archive_files(archive, dest, strip):
    """The files an archive of the bundle puts under dest (read here, on the host running install.py), so
    reset can remove exactly those."""
    import tarfile
    try:
        with tarfile.open(archive, "r:*") as t:
            names = [m.name for m in t.getmembers() if m.isfile()]
    except (OSError, tarfile.TarError):
        return []
    out = []
    for n in names:
        parts = [p for p in n.split("/") if p not in ("", ".")][strip:]
        if parts and ".." not in parts:
            out.append("%s/%s" % (dest.rstrip("/"), "/".join(parts)))
    return sorted(out)


def extracted_marker(f):
    """Left behind once a bundle archive is unpacked, so a re-run (and the plan) knows it is done."""
    return "/var/lib/airgap-installer/extracted/%s" % (f.get("sha256") or f.get("name"))


def needs_cri_dockerd(k8s_version):
    return kadm.version_tuple(k8s_version) >= (1, 24, 0)


def runtime_packages(bundle):
    """Top-level RPMs to install for the bundle's runtime (yum pulls the dependencies from the repos)."""
    names = bundle.package_names()
    pkgs = []
    if bundle.runtime == "docker":
        pkgs += [n for n in ("docker-ce", "docker-ce-cli") if n in names] or ["docker"]
        if needs_cri_dockerd(bundle.k8s_version):
            pkgs.append("cri-dockerd")
    else:
        pkgs += [n for n in ("containerd.io", "containerd") if n in names][:1] or ["containerd.io"]
    pkgs += list(KUBE_PACKAGES)
    pkgs += [n for n in ("cri-tools", "kubernetes-cni", "container-selinux") if n in names]
    return pkgs


def containerd_major(bundle):
    for name in ("containerd.io", "containerd"):
        v = bundle.package_version(name)
        if v:
            return kadm.version_tuple(v)[0] or 1
    f = bundle.file("containerd")
    if f and f.get("version"):
        return kadm.version_tuple(f["version"])[0] or 1
    return 1


def crictl_yaml(runtime):
    sock = kadm.CRI_SOCKETS[runtime]
    return "runtime-endpoint: %s\nimage-endpoint: %s\ntimeout: 10\n" % (sock, sock)


class Runtime(Phase):
    name = "runtime"
    title = "container runtime and Kubernetes packages"

    def watched_files(self, ctx, host):
        files = [CONTAINERD_CONFIG, DAEMON_JSON, CRI_DOCKER_DROPIN, CRICTL_YAML, C.TRUST_ANCHOR,
                 dkr.ca_path(ctx.registry)]
        files += sorted(self.hosts_files(ctx))
        files += [systemd.UNIT_DIR + "/containerd.service", systemd.UNIT_DIR + "/kubelet.service",
                  systemd.UNIT_DIR + "/kubelet.service.d/10-kubeadm.conf", systemd.UNIT_DIR + "/docker.service"]
        files += sorted(systemd.cri_dockerd_units("x"))
        files += [extracted_marker(f) for f in ctx.bundle.files if f.get("kind") == "archive"]
        return files + list(pins.VERSIONLOCK_CONFS)

    def hosts_files(self, ctx):
        ca = "%s/%s/ca.crt" % (ctd.CERTS_D, ctx.registry)
        own = ctx.own_registry
        if own is not None and ctx.ca_pem is None:
            ca = None  # your own registry with a certificate the system trust store already accepts
        out = ctd.hosts_files(ctx.bundle.image_registries(), ctx.registry, ca,
                              prefix=own.target.prefix if own is not None else "")
        if ca is not None and ctx.ca_pem is not None:
            out[ca] = ctx.ca_pem
        return out

    def plan(self, ctx, host, facts):
        b = ctx.bundle
        out = []
        # 1. software
        if b.install_mode == "binaries":
            out += self.plan_binaries(ctx, facts)
        else:
            missing = [p for p in runtime_packages(b) if not facts.rpm(p)]
            if missing:
                out.append(InstallPackages(missing))
            if pins.has_versionlock(facts):  # the pinned ones also get versionlock entries where the plugin is
                out.append(pins.lock_change([p for p in runtime_packages(b) if pins.is_pinned(p)]))
        # 2. trust the registry CA (system store; runtime specific below)
        ca = ctx.ca_pem
        if ca is None and ctx.own_registry is not None:
            pass  # your own registry, trusted by the system store (no --registry-ca)
        elif ca is None:
            out.append(Callback("write %s (the registry CA, made in the registry phase)" % C.TRUST_ANCHOR,
                                lambda conn, j: _late_ca(ctx, conn, j)))
        elif facts.file(C.TRUST_ANCHOR) != ca:
            out.append(WriteFile(C.TRUST_ANCHOR, ca, why="trust the image registry's CA"))
            out.append(Command("update-ca-trust extract", title="update the system trust store"))
        # 3. runtime config
        if b.runtime == "docker":
            out += self.plan_docker(ctx, facts)
        else:
            out += self.plan_containerd(ctx, facts)
        if facts.file(CRICTL_YAML) != crictl_yaml(b.runtime):
            out.append(WriteFile(CRICTL_YAML, crictl_yaml(b.runtime)))
        if not facts.service("kubelet").get("enabled"):
            out.append(Command("systemctl enable kubelet", title="enable kubelet (kubeadm starts it)",
                               undo="systemctl disable --now kubelet"))
        return out

    def plan_containerd(self, ctx, facts):
        out = []
        changed = False
        cfg = ctd.config_toml(ctx.pause_image(), containerd_major(ctx.bundle))
        if facts.file(CONTAINERD_CONFIG) != cfg:
            out.append(WriteFile(CONTAINERD_CONFIG, cfg, why="SystemdCgroup, pause image, registry mirrors"))
            changed = True
        for path, content in sorted(self.hosts_files(ctx).items()):
            if facts.file(path) != content:
                out.append(WriteFile(path, content))
                changed = True
        if changed:
            out.append(Service("containerd", restart=True))
        elif not facts.service("containerd").get("active"):
            out.append(Service("containerd"))
        return out

    def plan_docker(self, ctx, facts):
        out = []
        b = ctx.bundle
        changed = False
        daemon = dkr.daemon_json(registry_mirrors=["https://%s" % ctx.registry])
        if facts.file(DAEMON_JSON) != daemon:
            out.append(WriteFile(DAEMON_JSON, daemon, why="systemd cgroups, json-file 100m logs, overlay2, mirror"))
            changed = True
        ca_file = dkr.ca_path(ctx.registry)
        if ctx.ca_pem is not None and facts.file(ca_file) != ctx.ca_pem:
            out.append(WriteFile(ca_file, ctx.ca_pem))
            changed = True
        if changed:
            out.append(Service("docker", restart=True))
        elif not facts.service("docker").get("active"):
            out.append(Service("docker"))
        if needs_cri_dockerd(b.k8s_version):
            pause = ctx.local_ref(ctx.pause_image())
            bindir = BIN_DIR if b.install_mode == "binaries" else "/usr/bin"
            dropin = ("# Written by airgap-installer: pause image from the local registry.\n[Service]\nExecStart=\n"
                      "ExecStart=%s/cri-dockerd --container-runtime-endpoint fd:// --pod-infra-container-image=%s\n"
                      % (bindir, pause))
            if facts.file(CRI_DOCKER_DROPIN) != dropin:
                out.append(WriteFile(CRI_DOCKER_DROPIN, dropin))
                out.append(Service("cri-docker.socket", reload_units=True))
                out.append(Service("cri-docker", restart=True))
            elif not facts.service("cri-docker").get("active"):
                out.append(Service("cri-docker.socket"))
                out.append(Service("cri-docker"))
        return out

    def plan_binaries(self, ctx, facts):
        b = ctx.bundle
        out = [InstallPackages(BINARY_HOST_DEPS, provides=True)]
        for f in b.files:
            name = f.get("name") or os.path.basename(f["path"])
            src = b.path(f["path"])
            if f.get("kind") == "binary" and name in KNOWN_BINARIES:
                dst = "%s/%s" % (BIN_DIR, name)
                if facts.bin_sha.get(dst) != f.get("sha256"):
                    out.append(PutFile(src, dst, 0o755, f.get("sha256")))
            elif f.get("kind") == "archive" and ("cni-plugins" in name or "containerd" in name or "crictl" in name
                                                  or name.startswith("docker-")):
                if "cni-plugins" in name:
                    dest, strip = "/opt/cni/bin", 0
                elif "crictl" in name:
                    dest, strip = BIN_DIR, 0
                elif name.startswith("docker-"):  # Docker's static tarball: docker/{dockerd,containerd,runc,...}
                    dest, strip = BIN_DIR, 1
                else:  # containerd's release tarball: bin/containerd...
                    dest, strip = "/usr/local", 0
                marker = extracted_marker(f)
                if not facts.has_file(marker):
                    tmp = "/var/lib/airgap-installer/upload/%s" % name
                    out.append(PutFile(src, tmp, 0o600, f.get("sha256"), title="upload %s" % name))
                    placed = archive_files(src, dest, strip)
                    # remember which directories of dest did not exist, so reset removes exactly those
                    made = "%s.dirs" % marker
                    ancestors = ["/".join(dest.rstrip("/").split("/")[:i]) for i in
                                 range(2, len(dest.rstrip("/").split("/")) + 1)]
                    record = "mkdir -p {m} && for d in {a}; do [ -d \"$d\" ] || echo \"$d\"; done > {mf}".format(
                        m=quote(os.path.dirname(marker)), a=" ".join(quote(a) for a in ancestors), mf=quote(made))
                    undo = "rm -f %s; [ -f %s ] && tac %s | xargs -r rmdir 2>/dev/null; true" % (
                        " ".join(quote(p) for p in placed), quote(made), quote(made))
                    out.append(Command("{r} && mkdir -p {d} && tar -xzf {t} -C {d} --strip-components={s} "
                                       "--no-same-owner && rm -f {t} && touch {mk}".format(
                                           r=record, d=quote(dest), t=quote(tmp), s=strip, mk=quote(marker)),
                                       title="unpack %s into %s" % (name, dest), undo=undo))
        units = {}
        if b.runtime == "docker":
            units[systemd.UNIT_DIR + "/docker.service"] = systemd.docker_unit(BIN_DIR)
            if needs_cri_dockerd(b.k8s_version):
                units.update(systemd.cri_dockerd_units(ctx.local_ref(ctx.pause_image()), BIN_DIR))
        units[systemd.UNIT_DIR + "/containerd.service"] = systemd.containerd_unit(BIN_DIR)
        units.update(systemd.kubelet_units(BIN_DIR))
        changed = False
        for path, content in sorted(units.items()):
            if facts.file(path) != content:
                out.append(WriteFile(path, content))
                changed = True
        if changed:
            out.append(Command("systemctl daemon-reload", title="reload systemd units"))
        return out


def _late_ca(ctx, conn, journal):
    """Install the registry CA that did not exist yet when the plan was made (first run)."""
    from installer.errors import InstallerError
    if ctx.ca_pem is None:
        raise InstallerError("the registry CA %s does not exist yet" % C.CA_CERT, phase="runtime",
                             hint="Run ./install.py again; the registry phase makes it")
    changed = False
    targets = [C.TRUST_ANCHOR]
    if ctx.bundle.runtime == "docker":
        targets.append(dkr.ca_path(ctx.registry))
    else:
        targets.append("%s/%s/ca.crt" % (ctd.CERTS_D, ctx.registry))
    for path in targets:
        changed = WriteFile(path, ctx.ca_pem).apply(conn, journal) or changed
    if changed:
        conn.check("update-ca-trust extract", "updating the trust store")
    return changed
