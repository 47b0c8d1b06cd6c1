"""The node image: a Debian bookworm userland with systemd, presented as a Rocky Linux 9 host.

Recipe (everything that goes into the image is in NodeRecipe, and its hash names the caches):
  1. `debootstrap --variant=minbase bookworm` from the mirror in the machine's apt sources,
     tarred to CACHE/debootstrap-<hash>.tar and imported as airgap-rig-base:<hash>.
  2. in a build container (host network, only to reach the apt mirror): apt-get install the node
     packages (systemd-sysv dbus iproute2 procps python3 openssh-server iptables conntrack kmod
     chrony curl ca-certificates rpm dnf ...; NOT containerd: the bundle provides it), then
     make it look like EL9: /etc/os-release (ID=rocky ...), /etc/redhat-release, an empty
     /etc/yum.repos.d/, /etc/sysconfig/, rpm database in /var/lib/rpm, a rocky-release RPM in it
     (so dnf finds $releasever the EL way), sshd with per-node host keys and root key login.
  3. `docker export` of the build container -> CACHE/node-<hash>.tar, imported as
     airgap-rig-node:<hash> with CMD /sbin/init.
Re-runs on one machine reuse the image (or re-import the tarball when the engine is new).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .docker_engine import DockerEngine
from .util import TIMER, RigError, log, run

NODE_PACKAGES = (
    "systemd-sysv", "dbus", "iproute2", "procps", "python3", "openssh-server", "openssh-client",
    "iptables", "conntrack", "kmod", "chrony", "curl", "ca-certificates", "rpm", "dnf",
    "iputils-ping", "less", "tar", "gzip", "xz-utils", "sudo",
)

ROCKY9_OS_RELEASE = {
    "NAME": "Rocky Linux",
    "VERSION": "9.4 (Blue Onyx)",
    "ID": "rocky",
    "ID_LIKE": "rhel centos fedora",
    "VERSION_ID": "9.4",
    "PLATFORM_ID": "platform:el9",
    "PRETTY_NAME": "Rocky Linux 9.4 (Blue Onyx)",
    "ANSI_COLOR": "0;32",
    "LOGO": "fedora-logo-icon",
    "CPE_NAME": "cpe:/o:rocky:rocky:9::baseos",
    "HOME_URL": "https://rockylinux.org/",
    "BUG_REPORT_URL": "https://bugs.rockylinux.org/",
    "SUPPORT_END": "2032-05-31",
    "ROCKY_SUPPORT_PRODUCT": "Rocky-Linux-9",
    "ROCKY_SUPPORT_PRODUCT_VERSION": "9.4",
    "REDHAT_SUPPORT_PRODUCT": "Rocky Linux",
    "REDHAT_SUPPORT_PRODUCT_VERSION": "9.4",
}

# Capabilities the rig's rocky-release stand-in declares in the node's rpm database, because the
# Debian userland really has them and every EL host has them installed: %post scriptlets need
# /bin/sh, and dnf reads $releasever from system-release(releasever).
RELEASE_PROVIDES = (
    "system-release = 9.4",
    "system-release(releasever) = 9",
    "redhat-release = 9.4",
    "rocky-release = 9.4",
    "/bin/sh",
    "/bin/bash",
    "/usr/bin/sh",
    "/usr/bin/bash",
)


# docker import --change lines (the stop signal SIGRTMIN+3 is set by `docker run --stop-signal`)
IMAGE_CHANGES = ('CMD ["/sbin/init"]', "ENV container=docker")


@dataclass(frozen=True)
class NodeRecipe:
    suite: str = "bookworm"
    variant: str = "minbase"
    mirror: str = ""
    arch: str = ""
    apt_sources: tuple[str, ...] = ()  # one-line "deb URI SUITE COMPONENTS" entries for the build
    packages: tuple[str, ...] = NODE_PACKAGES
    os_release: tuple[tuple[str, str], ...] = tuple(ROCKY9_OS_RELEASE.items())
    redhat_release: str = "Rocky Linux release 9.4 (Blue Onyx)"
    release_provides: tuple[str, ...] = RELEASE_PROVIDES
    revision: int = 3  # bump when build_script() changes in a way the fields above do not show
    extra: tuple[str, ...] = field(default=())

    def debootstrap_key(self) -> str:
        return _hash({"suite": self.suite, "variant": self.variant, "mirror": self.mirror, "arch": self.arch})

    def key(self) -> str:
        return _hash({**asdict(self), "script": build_script(self), "changes": IMAGE_CHANGES})


def _hash(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def _dpkg_arch() -> str:
    if shutil.which("dpkg"):
        cp = run(["dpkg", "--print-architecture"], check=False, timeout=10)
        if cp.returncode == 0 and cp.stdout.strip():
            return cp.stdout.strip()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def host_apt_sources(suite: str = "bookworm") -> list[tuple[str, str, str]]:
    """(uri, suite, components) of the machine's enabled Debian `deb` sources for `suite*`,
    from /etc/apt/sources.list (one-line format) and /etc/apt/sources.list.d/*.list|*.sources."""
    entries: list[tuple[str, str, str]] = []
    apt = Path("/etc/apt")
    one_line = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]
    for f in one_line:
        if not f.is_file():
            continue
        for line in f.read_text(errors="replace").splitlines():
            line = line.split("#", 1)[0].strip()
            m = re.match(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s*(.*)$", line)
            if m:
                entries.append((m.group(1), m.group(2), m.group(3) or "main"))
    for f in sorted((apt / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", f.read_text(errors="replace")):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                k, v = line.split(":", 1)
                fields[k.strip().lower()] = v.strip()
            if fields.get("enabled", "yes").lower() == "no" or "deb" not in fields.get("types", "").split():
                continue
            for uri in fields.get("uris", "").split():
                for s in fields.get("suites", "").split():
                    entries.append((uri, s, fields.get("components", "main")))
    return [e for e in entries if e[1] == suite or e[1].startswith(suite + "-") or e[1].startswith(suite + "/")]


def default_recipe() -> NodeRecipe:
    suite = "bookworm"
    sources = host_apt_sources(suite)
    mirror = os.environ.get("AIRGAP_RIG_MIRROR", "")
    if not mirror:
        mains = [u for u, s, _ in sources if s == suite]
        mirror = mains[0] if mains else "http://deb.debian.org/debian"
    lines = tuple(f"deb {u} {s} {c}" for u, s, c in sources) or (f"deb {mirror} {suite} main",)
    return NodeRecipe(suite=suite, mirror=mirror, arch=_dpkg_arch(), apt_sources=lines)


def _os_release_text(recipe: NodeRecipe) -> str:
    return "".join(f'{k}="{v}"\n' for k, v in recipe.os_release)


def build_script(recipe: NodeRecipe) -> str:
    """The shell script run in the build container (with /rigbuild holding its inputs)."""
    provides = "\n".join(f"Provides: {p}" for p in recipe.release_provides)
    version = dict(recipe.os_release).get("VERSION_ID", "9.4")
    return rf"""#!/bin/sh
set -eu
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
cp /rigbuild/sources.list /etc/apt/sources.list
rm -f /etc/apt/sources.list.d/*
if [ -f /rigbuild/apt.conf ]; then cp /rigbuild/apt.conf /etc/apt/apt.conf.d/99rig-build; fi
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
apt-get -q update
apt-get -q install -y --no-install-recommends {" ".join(recipe.packages)}
apt-get clean
rm -rf /var/lib/apt/lists/* /etc/apt/apt.conf.d/99rig-build /usr/sbin/policy-rc.d
# the nodes have no internet: leave apt pointing nowhere (a stray apt-get would hit the leak trap)
: > /etc/apt/sources.list

# --- systemd in a container (kind-style) ---
systemctl set-default multi-user.target
for u in getty@tty1.service console-getty.service serial-getty@.service systemd-udevd.service \
         systemd-udev-trigger.service systemd-remount-fs.service sys-kernel-debug.mount \
         sys-kernel-tracing.mount sys-kernel-config.mount dev-hugepages.mount \
         systemd-firstboot.service systemd-random-seed.service apt-daily.timer \
         apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do
  ln -sf /dev/null /etc/systemd/system/$u
done
echo 'ReadKMsg=no' >> /etc/systemd/journald.conf
: > /etc/machine-id

# --- air gap: docker gives even --internal networks a default route to the bridge; drop it at
# boot (the rig also drops it after start), like the Vagrant suite does on real VMs
cat > /etc/systemd/system/airgap-rig-no-default-route.service <<'EOT'
[Unit]
Description=airgap rig: remove the default route (no way out of the datacenter)
DefaultDependencies=no
Before=network-pre.target sysinit.target
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'ip route del default 2>/dev/null; ip -6 route del default 2>/dev/null; true'
RemainAfterExit=yes
[Install]
WantedBy=sysinit.target
EOT
systemctl enable airgap-rig-no-default-route.service

# --- sshd: root key login, host keys made per node at first start ---
rm -f /etc/ssh/ssh_host_*
mkdir -p /etc/systemd/system/ssh.service.d /root/.ssh
chmod 700 /root/.ssh
cat > /etc/systemd/system/ssh.service.d/airgap-rig.conf <<'EOT'
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
EOT
cat > /etc/ssh/sshd_config.d/airgap-rig.conf <<'EOT'
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
EOT
systemctl enable ssh.service

# --- chrony the EL way: /etc/chrony.conf, chronyd.service, /etc/sysconfig/chronyd. -x: the nodes
# share the machine's kernel clock, so chronyd tracks and serves time but never sets the clock.
# A real chronyd.service unit as on EL (Debian's is only an alias of chrony.service, which systemctl
# refuses to enable by that name), made from Debian's unit.
systemctl disable chrony.service >/dev/null 2>&1 || true
rm -f /etc/systemd/system/chronyd.service
sed -e '/^Alias=/d' /lib/systemd/system/chrony.service > /etc/systemd/system/chronyd.service
mkdir -p /etc/systemd/system/chronyd.service.d /var/lib/chrony /var/log/chrony
cat > /etc/systemd/system/chronyd.service.d/airgap-rig.conf <<'EOT'
[Service]
EnvironmentFile=-/etc/sysconfig/chronyd
ExecStart=
ExecStart=!/usr/sbin/chronyd -x -f /etc/chrony.conf $OPTIONS
EOT
cat > /etc/chrony.conf <<'EOT'
# EL9 default, except: an air-gapped datacenter host has no time source until the installer
# configures one (the airgap rig keeps the boot quiet; a pool configured later hits the leak trap)
#pool 2.rocky.pool.ntp.org iburst
sourcedir /run/chrony-dhcp
driftfile /var/lib/chrony/drift
makestep 1.0 3
rtcsync
keyfile /etc/chrony.keys
ntsdumpdir /var/lib/chrony
leapsectz right/UTC
logdir /var/log/chrony
EOT
touch /etc/chrony.keys
systemctl enable chronyd.service

# --- EL's trust store tool on Debian's: anchors in /etc/pki/ca-trust/source/anchors, `update-ca-trust`
mkdir -p /etc/pki/ca-trust/source/anchors /usr/local/share/ca-certificates/el-anchors
cat > /usr/bin/update-ca-trust <<'EOT'
#!/bin/sh
# EL's update-ca-trust on the airgap rig's Debian userland: EL anchors -> Debian's CA store.
rm -f /usr/local/share/ca-certificates/el-anchors/*
for f in /etc/pki/ca-trust/source/anchors/*; do
  [ -f "$f" ] && cp "$f" "/usr/local/share/ca-certificates/el-anchors/$(basename "$f" .crt).crt"
done
exec update-ca-certificates --fresh >/dev/null 2>&1
EOT
chmod 755 /usr/bin/update-ca-trust

# --- present it as an EL host ---
rm -f /etc/os-release
cat > /usr/lib/os-release <<'EOT'
{_os_release_text(recipe)}EOT
cp /usr/lib/os-release /etc/os-release
echo '{recipe.redhat_release}' > /etc/redhat-release
cp /etc/redhat-release /etc/rocky-release
ln -sf redhat-release /etc/system-release
echo 'cpe:/o:rocky:rocky:9::baseos' > /etc/system-release-cpe
mkdir -p /etc/yum.repos.d /etc/sysconfig /etc/dnf/vars /etc/rpm /var/lib/rpm
rm -f /etc/yum.repos.d/*
echo '%_dbpath /var/lib/rpm' > /etc/rpm/macros.airgap-rig
rpm --initdb
mkdir -p /tmp/rpmb/SPECS
cat > /tmp/rpmb/SPECS/rocky-release.spec <<'EOT'
Name: rocky-release
Version: {version}
Release: 1.airgaprig.el9
Summary: airgap-bundler test rig stand-in for rocky-release (declares what the Debian userland provides)
License: Apache-2.0
BuildArch: noarch
AutoReqProv: no
{provides}
%description
Test double, not Rocky Linux: marks an airgap-bundler test-rig node as an EL9 host for rpm/dnf.
%files
EOT
# chrony is part of every EL minimal install, and the node runs Debian's chronyd: the rpm database says so
cat > /tmp/rpmb/SPECS/chrony.spec <<'EOT'
Name: chrony
Version: 4.3
Release: 1.airgaprig.el9
Summary: airgap-bundler test rig stand-in for chrony (the node runs Debian's chronyd)
License: GPL-2.0-only
BuildArch: noarch
AutoReqProv: no
%description
Test double, not Rocky Linux's chrony: records in rpm that the node has chronyd (from Debian).
%files
EOT
rpmbuild --quiet --define '_topdir /tmp/rpmb' -bb /tmp/rpmb/SPECS/rocky-release.spec /tmp/rpmb/SPECS/chrony.spec
rpm -i --nodeps /tmp/rpmb/RPMS/noarch/rocky-release-*.rpm /tmp/rpmb/RPMS/noarch/chrony-*.rpm
rm -rf /tmp/rpmb /root/rpmbuild
echo 'airgap-bundler test rig node (Debian bookworm userland presented as {recipe.redhat_release})' \
  > /etc/airgap-rig-node
dnf --version >/dev/null
rpm -q rocky-release chrony
"""


@dataclass
class NodeImage:
    tag: str
    recipe: NodeRecipe


def missing_prerequisites() -> list[str]:
    missing = []
    if not shutil.which("debootstrap"):
        missing.append("debootstrap (apt-get install debootstrap)")
    if os.geteuid() != 0:
        missing.append("root (debootstrap)")
    return missing


def _image_exists(engine: DockerEngine, tag: str) -> bool:
    return engine.docker("image", "inspect", tag, check=False, timeout=30).returncode == 0


def _import(engine: DockerEngine, tarball: Path, tag: str, changes: list[str], timeout: float = 600) -> None:
    args = ["image", "import"]
    for c in changes:
        args += ["--change", c]
    engine.docker(*args, str(tarball), tag, timeout=timeout)


def _debootstrap(recipe: NodeRecipe, cache: Path) -> Path:
    tarball = cache / f"debootstrap-{recipe.suite}-{recipe.arch}-{recipe.debootstrap_key()}.tar"
    if tarball.exists():
        log(f"debootstrap cache hit: {tarball}")
        return tarball
    if os.geteuid() != 0 or not shutil.which("debootstrap"):
        raise RigError("building the node image needs root and debootstrap (apt-get install debootstrap)")
    with tempfile.TemporaryDirectory(prefix="debootstrap-", dir=cache) as tmp:
        root = Path(tmp) / "root"
        run(["debootstrap", f"--variant={recipe.variant}", f"--arch={recipe.arch}", recipe.suite,
             str(root), recipe.mirror], timeout=1200)
        part = tarball.with_suffix(".tar.part")
        run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(part), "."], timeout=600)
        part.rename(tarball)
    return tarball


def _host_apt_conf() -> str:
    """Acquire:: settings of the machine's apt (proxies, snapshot validity) for the build container."""
    keep = []
    for f in sorted(Path("/etc/apt/apt.conf.d").glob("*")):
        if f.is_file():
            text = f.read_text(errors="replace")
            if "Acquire::" in text and "DEP-11" not in text:
                keep.append(f"// from {f}\n{text.strip()}\n")
    return "\n".join(keep)


def ensure_node_image(engine: DockerEngine, cache: Path, recipe: NodeRecipe | None = None) -> NodeImage:
    """Return the node image, building and caching it when needed."""
    recipe = recipe or default_recipe()
    cache.mkdir(parents=True, exist_ok=True)
    key = recipe.key()
    tag = f"airgap-rig-node:{key}"
    if _image_exists(engine, tag):
        log(f"node image cache hit: {tag}")
        return NodeImage(tag, recipe)
    node_tar = cache / f"node-{key}.tar"
    changes = list(IMAGE_CHANGES)
    if node_tar.exists():
        with TIMER.stage("node image: import cached rootfs"):
            _import(engine, node_tar, tag, changes)
        return NodeImage(tag, recipe)

    with TIMER.stage("node image: debootstrap"):
        base_tar = _debootstrap(recipe, cache)
    base_tag = f"airgap-rig-base:{recipe.debootstrap_key()}"
    with TIMER.stage("node image: import debootstrap"):
        if not _image_exists(engine, base_tag):
            _import(engine, base_tar, base_tag, [])
    build_name = f"airgap-rig-build-{key}"
    with TIMER.stage("node image: packages + EL presentation"), tempfile.TemporaryDirectory(
        prefix="rigbuild-", dir=cache
    ) as ctx:
        ctxp = Path(ctx)
        (ctxp / "sources.list").write_text("\n".join(recipe.apt_sources) + "\n")
        conf = _host_apt_conf()
        if conf:
            (ctxp / "apt.conf").write_text(conf)
        (ctxp / "build.sh").write_text(build_script(recipe))
        os.chmod(ctxp, 0o755)
        engine.docker("rm", "-f", build_name, check=False, timeout=60)
        try:
            # host network only for this build step: apt reaches the same mirror the machine uses
            engine.docker("run", "--name", build_name, "--network", "host", "-v", f"{ctxp}:/rigbuild:ro",
                          base_tag, "/bin/sh", "/rigbuild/build.sh", timeout=1800)
            part = node_tar.with_suffix(".tar.part")
            engine.docker("export", "-o", str(part), build_name, timeout=600)
            part.rename(node_tar)
        finally:
            engine.docker("rm", "-f", build_name, check=False, timeout=60)
    with TIMER.stage("node image: import"):
        _import(engine, node_tar, tag, changes)
    return NodeImage(tag, recipe)


def remove_cached_images(engine: DockerEngine) -> None:
    """Drop all rig images from the engine (the tarball caches stay)."""
    cp = engine.docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=False)
    tags = [t for t in cp.stdout.split() if t.startswith(("airgap-rig-node:", "airgap-rig-base:"))]
    if tags:
        engine.docker("rmi", *tags, check=False, timeout=120)


__all__ = ["NodeImage", "NodeRecipe", "default_recipe", "ensure_node_image", "host_apt_sources",
           "missing_prerequisites", "remove_cached_images"]
