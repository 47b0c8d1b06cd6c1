"""The yum repos of the e2e upstream: the Rocky 9 media, download.docker.com and pkgs.k8s.io stand-ins.

Layout under `dest` (paths like the real ones, so a manifest's baseurls read naturally):

    media/                                   the Rocky 9 DVD: .treeinfo, .discinfo, media.repo,
      BaseOS/{Packages/<letter>/,repodata}     BaseOS and AppStream repos
      AppStream/{Packages/<letter>/,repodata}
    download.docker.com/linux/centos/9/x86_64/stable/{Packages,repodata}      containerd.io, docker-ce(-cli)
    pkgs.k8s.io/core:/stable:/v1.30/rpm/{x86_64,repodata}                    kubeadm/kubelet/kubectl, cri-tools,
                                                                             kubernetes-cni

What the RPMs carry (see README.md): the programs the rig node (Debian bookworm presented as Rocky 9)
already has come as marker-only packages (/usr/share/airgap-e2e/<name> + the EL Provides) so dnf
installs them without touching Debian's files; programs the node lacks carry the real Debian binary
(copied from this machine: htpasswd + apr/apr-util, socat, ethtool, libdevmapper, containerd, runc,
dockerd, CNI plugins); kubeadm, kubelet, kubectl and crictl are python3 TEST DOUBLES (doubles/).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bundler.images.list import kubeadm_images
from tests.upstream.yumrepos import MEDIA as UPSTREAM_MEDIA
from tests.upstream.yumrepos import HostFile, PkgDef, build_rpms, cached_build, createrepo, pkg

from . import units

HERE = Path(__file__).resolve().parent
DOUBLES = HERE / "doubles"
FORMAT_VERSION = 1
EL = "el9"
K8S_VERSION = "1.30.4"
K8S_REL = "150500.1.1"
CONTAINERD_VERSION = "1.6.20"  # Debian bookworm's containerd, sold as containerd.io
DOCKER_VERSION = "20.10.24"    # Debian bookworm's docker.io, sold as docker-ce
MARKER_DIR = "/usr/share/airgap-e2e"
DOUBLE_LIB = "/usr/lib/airgap-e2e/kubedouble.py"
LIBDIR = "/usr/lib/x86_64-linux-gnu"  # Debian's library directory (the node's ld.so searches it)

# Debian packages whose files go into the RPMs (CI: apt-get install them on the build machine).
APT_PACKAGES = ("containerd", "runc", "docker.io", "containernetworking-plugins", "apache2-utils", "socat",
                "ethtool", "docker-registry", "libdevmapper1.02.1", "openssl", "rpm", "createrepo-c", "dnf",
                "skopeo", "umoci")

# Shared objects the Debian binaries we ship need that the rig's node image does not have (checked
# against tests/e2e/rig/node_image.NODE_PACKAGES with ldd): they ship in EL-named library packages.
HOST_LIBS = {
    "apr": (f"{LIBDIR}/libapr-1.so.0",),
    "apr-util": (f"{LIBDIR}/libaprutil-1.so.0",),
    "device-mapper-libs": (f"{LIBDIR}/libdevmapper.so.1.02.1",),
}


def _real(path: str) -> HostFile:
    """A file of this machine (symlinks followed), e.g. a Debian binary."""
    return HostFile(os.path.realpath(path), 0o755)


def _lib(path: str) -> HostFile:
    return HostFile(os.path.realpath(path), 0o755)


def _marker(name: str, what: str) -> dict[str, str]:
    return {f"{MARKER_DIR}/{name}": (
        f"{name}: marker package of the airgap-bundler e2e media. The rig node's Debian userland already "
        f"provides {what}; this RPM only records that the EL package is installed.\n")}


IMPORT_LINE = "import kubedouble as kd  # noqa: E402\n"


def _double(name: str, version: str) -> str:
    text = (DOUBLES / f"{name}.py").read_text()
    if IMPORT_LINE in text:  # the shared library is version-free (shared_lib): the program pins its version
        text = text.replace(IMPORT_LINE, IMPORT_LINE + f"kd.pin({version!r}, {kubeadm_images(version)!r})\n", 1)
    return text.replace("@KUBE_VERSION@", version).replace("@HELM_VERSION@", version)


def shared_lib() -> str:
    """kubedouble.py as the RPMs ship it: the same bytes in every version's package (rpm lets packages share
    a file only when identical, and an upgrade has kubeadm of one version beside a kubelet of another)."""
    return (DOUBLES / "kubedouble.py").read_text()


def kubedouble_lib(version: str = K8S_VERSION) -> str:
    text = (DOUBLES / "kubedouble.py").read_text()
    return text.replace("@KUBE_VERSION@", version).replace("@KUBEADM_IMAGES@", json.dumps(kubeadm_images(version)))


def _upstream(name: str) -> PkgDef:
    return next(p for p in UPSTREAM_MEDIA if p.name == name)


# --------------------------------------------------------------------------------------- media
def _m(name: str, version: str, release: str, what: str, arch: str = "x86_64", **kw: object) -> PkgDef:
    """A marker-only package (plus any extra `files`)."""
    files = {**_marker(name, what), **kw.pop("files", {})}  # type: ignore[dict-item]
    return pkg(name, version, f"{release}.{EL}", arch, files=files, **kw)  # type: ignore[arg-type]


BASEOS: tuple[PkgDef, ...] = (
    # A real /bin/sh for empty installroots (the content tests); the rig node's rocky-release
    # stand-in already provides /bin/sh, so dnf never installs these there.
    _upstream("filesystem"), _upstream("glibc"), _upstream("bash"),
    _m("iptables-nft", "1.8.10", "4", "iptables/ip6tables (nft)",
       provides=["iptables = 1.8.10", "ebtables = 1.8.10"], files={"/usr/sbin/ebtables": units.EBTABLES_WRAPPER}),
    _m("conntrack-tools", "1.4.7", "2", "conntrack (Debian package conntrack)", provides=["conntrack = 1.4.7"]),
    _m("chrony", "4.5", "1", "chronyd (the rig runs it as chronyd.service)",
       post=units.systemd_post("chronyd.service"), preun=units.systemd_preun("chronyd.service")),
    _m("tar", "1.34", "6", "tar", epoch=2),
    _m("gzip", "1.12", "1", "gzip"),
    _m("xz", "5.2.5", "8", "xz"),
    _m("iproute", "6.2.0", "6", "ip (iproute2)"),
    _m("iproute-tc", "6.2.0", "6", "tc (iproute2)", requires=["iproute"]),
    _m("util-linux", "2.37.4", "18", "util-linux (mount, nsenter, ...)"),
    _m("python3", "3.9.18", "3", "python3 (3.11)", provides=["python(abi) = 3.9", "/usr/bin/python3"]),
    _m("openssl", "3.0.7", "27", "openssl", epoch=1),
    _m("curl", "7.76.1", "29", "curl"),
    _m("libseccomp", "2.5.2", "2", "libseccomp.so.2", provides=["libseccomp.so.2()(64bit)"]),
    _m("kmod", "28", "9", "modprobe"),
    pkg("ca-certificates", "2024.2.69_v8.0.303", f"91.4.{EL}", "noarch",
        files={"/usr/bin/update-ca-trust": units.UPDATE_CA_TRUST,
               "/etc/pki/ca-trust/source/anchors/.airgap-e2e": "EL trust anchors directory\n"},
        summary="update-ca-trust for the e2e rig (EL anchors into the Debian trust store)"),
    pkg("ethtool", "6.2", f"1.{EL}", "x86_64", epoch=2, files={"/usr/sbin/ethtool": _real("/usr/sbin/ethtool")},
        summary="ethtool (Debian's binary)"),
    pkg("device-mapper-libs", "1.02.197", f"2.{EL}", "x86_64", epoch=9,
        provides=["libdevmapper.so.1.02()(64bit)"],
        files={p: _lib(p) for p in HOST_LIBS["device-mapper-libs"]}, post=units.LDCONFIG, postun=units.LDCONFIG,
        summary="libdevmapper (Debian's shared object)"),
)

APPSTREAM: tuple[PkgDef, ...] = (
    pkg("apr", "1.7.0", f"12.{EL}", "x86_64", provides=["libapr-1.so.0()(64bit)"],
        files={p: _lib(p) for p in HOST_LIBS["apr"]}, post=units.LDCONFIG, postun=units.LDCONFIG,
        summary="Apache Portable Runtime (Debian's shared object)"),
    pkg("apr-util", "1.6.1", f"23.{EL}", "x86_64", requires=["apr"], provides=["libaprutil-1.so.0()(64bit)"],
        files={p: _lib(p) for p in HOST_LIBS["apr-util"]}, post=units.LDCONFIG, postun=units.LDCONFIG,
        summary="Apache Portable Runtime utilities (Debian's shared object)"),
    pkg("httpd-tools", "2.4.57", f"8.{EL}", "x86_64",
        requires=["libapr-1.so.0()(64bit)", "libaprutil-1.so.0()(64bit)"],
        files={"/usr/bin/htpasswd": _real("/usr/bin/htpasswd")},
        summary="htpasswd (Debian's apache2-utils binary, bcrypt with -B)"),
    pkg("socat", "1.7.4.1", f"5.{EL}", "x86_64", files={"/usr/bin/socat": _real("/usr/bin/socat")},
        summary="socat (Debian's binary)"),
    pkg("container-selinux", "2.229.0", f"1.{EL}", "noarch", epoch=3,
        files=_marker("container-selinux", "nothing: SELinux is disabled on the rig nodes")),
)

# --------------------------------------------------------------------------------------- docker-ce
_CONTAINERD_FILES = {
    "/usr/bin/containerd": _real("/usr/bin/containerd"),
    "/usr/bin/containerd-shim-runc-v2": _real("/usr/bin/containerd-shim-runc-v2"),
    "/usr/bin/ctr": _real("/usr/bin/ctr"),
    "/usr/bin/runc": _real("/usr/sbin/runc"),
    "/usr/lib/systemd/system/containerd.service": units.CONTAINERD_SERVICE,
    "/etc/containerd/config.toml": units.CONTAINERD_CONFIG,
}

DOCKER_CE: tuple[PkgDef, ...] = (
    pkg("containerd.io", CONTAINERD_VERSION, f"3.1.{EL}", "x86_64",
        requires=["container-selinux >= 2:2.74", "libseccomp"],
        provides=["containerd", f"containerd = {CONTAINERD_VERSION}", "runc", "runc = 1.1.5"],
        obsoletes=["containerd", "runc"], conflicts=["containerd", "runc"], files=_CONTAINERD_FILES,
        config=["/etc/containerd/config.toml"],
        post=units.systemd_post("containerd.service"), preun=units.systemd_preun("containerd.service"),
        postun=units.systemd_postun_restart("containerd.service"),
        summary="An industry-standard container runtime (Debian's containerd and runc binaries)"),
    pkg("docker-ce-cli", DOCKER_VERSION, f"1.{EL}", "x86_64", epoch=1,
        files={"/usr/bin/docker": _real("/usr/bin/docker")}, summary="The Docker CLI (Debian's docker.io binary)"),
    pkg("docker-ce", DOCKER_VERSION, f"1.{EL}", "x86_64", epoch=3,
        requires=["containerd.io >= 1.6.4", "docker-ce-cli", "container-selinux >= 2:2.74", "iptables", "tar",
                  "xz", "libdevmapper.so.1.02()(64bit)"],
        files={"/usr/bin/dockerd": _real("/usr/sbin/dockerd"), "/usr/bin/docker-proxy": _real("/usr/sbin/docker-proxy"),
               "/usr/bin/docker-init": _real("/usr/bin/docker-init"),
               "/usr/lib/systemd/system/docker.service": units.DOCKER_SERVICE,
               "/usr/lib/systemd/system/docker.socket": units.DOCKER_SOCKET},
        post="getent group docker >/dev/null 2>&1 || groupadd -r docker >/dev/null 2>&1 || :\n"
             + units.systemd_post("docker.service", "docker.socket"),
        preun=units.systemd_preun("docker.service", "docker.socket"),
        postun=units.systemd_postun_restart("docker.service"),
        summary="The Docker engine (Debian's docker.io dockerd)"),
)

# --------------------------------------------------------------------------------------- kubernetes
CNI_PLUGINS = ("bandwidth", "bridge", "dhcp", "firewall", "host-device", "host-local", "ipvlan", "loopback",
               "macvlan", "portmap", "ptp", "sbr", "static", "tuning", "vlan", "vrf")


def kubernetes_packages(version: str = K8S_VERSION) -> tuple[PkgDef, ...]:
    lib = shared_lib()
    minor = ".".join(version.split(".")[:2])
    return (
        pkg("kubernetes-cni", "1.4.0", K8S_REL, "x86_64",
            files={f"/opt/cni/bin/{n}": _real(f"/usr/lib/cni/{n}") for n in CNI_PLUGINS},
            dirs=("/opt/cni", "/opt/cni/bin"),
            summary="Binaries required to provision kubernetes container networking (Debian's "
                    "containernetworking-plugins 1.1.1)"),
        pkg("cri-tools", f"{minor}.1", K8S_REL, "x86_64", requires=["python3"],
            files={"/usr/bin/crictl": _double("crictl", version)},
            summary="crictl TEST DOUBLE (python3 over ctr) - Debian 12 has no cri-tools",
            description="TEST DOUBLE of crictl for the airgap-bundler e2e rig: pull/images/info over ctr."),
        pkg("kubelet", version, K8S_REL, "x86_64",
            requires=["conntrack", "ebtables", "ethtool", "iproute", "iptables >= 1.4.21", "kubernetes-cni >= 1.2.0",
                      "socat", "util-linux", "python3", "openssl"],
            files={"/usr/bin/kubelet": _double("kubelet", version), DOUBLE_LIB: lib,
                   "/usr/lib/systemd/system/kubelet.service": units.KUBELET_SERVICE,
                   "/etc/sysconfig/kubelet": "KUBELET_EXTRA_ARGS=\n"},
            config=["/etc/sysconfig/kubelet"],
            post=units.systemd_post("kubelet.service"), preun=units.systemd_preun("kubelet.service"),
            postun=units.systemd_postun_restart("kubelet.service"),
            summary="kubelet TEST DOUBLE (python3) for the airgap-bundler e2e rig",
            description="TEST DOUBLE of kubelet: records flags, serves the apiserver double, heartbeats."),
        pkg("kubectl", version, K8S_REL, "x86_64", requires=["python3"],
            files={"/usr/bin/kubectl": _double("kubectl", version), DOUBLE_LIB: lib},
            summary="kubectl TEST DOUBLE (python3) for the airgap-bundler e2e rig",
            description="TEST DOUBLE of kubectl: apply/get against the apiserver double."),
        pkg("kubeadm", version, K8S_REL, "x86_64",
            requires=[f"cri-tools >= {minor}.0", "python3", "openssl"],
            files={"/usr/bin/kubeadm": _double("kubeadm", version), DOUBLE_LIB: lib,
                   "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf": units.KUBEADM_DROPIN},
            summary="kubeadm TEST DOUBLE (python3) for the airgap-bundler e2e rig",
            description="TEST DOUBLE of kubeadm: validates its config, records calls, writes kubeadm's files."),
    )


KUBERNETES: tuple[PkgDef, ...] = kubernetes_packages()


@dataclass(frozen=True)
class E2ERepo:
    name: str
    relpath: str              # the repo directory under dest (where repodata/ is)
    packages: tuple[PkgDef, ...]
    pkgdir: str               # where the RPMs go, relative to the repo directory
    letters: bool = False     # Packages/<first letter>/ like the DVD

    def rpm_relpath(self, p: PkgDef) -> str:
        sub = f"{p.name[0].lower()}/" if self.letters else ""
        return f"{self.pkgdir}/{sub}{p.filename}"


E2E_REPOS: dict[str, E2ERepo] = {
    "media-baseos": E2ERepo("media-baseos", "media/BaseOS", BASEOS, "Packages", True),
    "media-appstream": E2ERepo("media-appstream", "media/AppStream", APPSTREAM, "Packages", True),
    "docker-ce": E2ERepo("docker-ce", "download.docker.com/linux/centos/9/x86_64/stable", DOCKER_CE, "Packages"),
    "kubernetes": E2ERepo("kubernetes", "pkgs.k8s.io/core:/stable:/v1.30/rpm", KUBERNETES, "x86_64"),
}
YUM_REPOS = tuple(E2E_REPOS)  # the yum repositories (what dnf and a manifest's repos: list)
MEDIA_REPOS = ("media-baseos", "media-appstream")

TREEINFO = """[header]
type = productmd.treeinfo
version = 1.2

[release]
name = Rocky Linux
short = Rocky
version = 9.4

[general]
family = Rocky Linux
name = Rocky Linux 9.4
platforms = x86_64
version = 9.4
arch = x86_64

[tree]
arch = x86_64
variants = AppStream,BaseOS

[variant-AppStream]
id = AppStream
packages = AppStream/Packages
repository = AppStream

[variant-BaseOS]
id = BaseOS
packages = BaseOS/Packages
repository = BaseOS
"""


def all_packages() -> list[PkgDef]:
    return [p for r in E2E_REPOS.values() for p in r.packages]


def build_e2e_repos(dest: str | os.PathLike[str]) -> dict[str, Path]:
    """Build the repos under `dest`. Returns {"media": DVD tree (for --media), "docker-ce": repo,
    "kubernetes": repo, "media-baseos": repo, "media-appstream": repo} (repo = a dir with repodata/)."""
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rpmbuild-", dir=root) as td:
        built = build_rpms(all_packages(), Path(td), defines={"_binary_payload": "w1.gzdio"})
        for r in E2E_REPOS.values():
            for p in r.packages:
                target = root / r.relpath / r.rpm_relpath(p)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(built[p], target)
    for r in E2E_REPOS.values():
        createrepo(root / r.relpath)
    media = root / "media"
    (media / ".treeinfo").write_text(TREEINFO)
    (media / ".discinfo").write_text("1714000000.000000\n9.4\nx86_64\n")
    (media / "media.repo").write_text("[InstallMedia]\nname=Rocky Linux 9.4\nmediaid=None\nmetadata_expire=-1\n"
                                      "gpgcheck=0\ncost=500\n")
    return paths(root)


def paths(root: Path) -> dict[str, Path]:
    out = {"media": root / "media"}
    out.update({name: root / r.relpath for name, r in E2E_REPOS.items()})
    return out


def content_hash() -> str:
    """Everything a build depends on: definitions, the sources here, the host files they copy."""
    h = hashlib.sha256(f"v{FORMAT_VERSION}".encode())
    for f in sorted(HERE.rglob("*.py")):
        if f.name.startswith("test_"):
            continue
        h.update(f.relative_to(HERE).as_posix().encode())
        h.update(f.read_bytes())
    h.update((HERE.parent.parent / "upstream" / "yumrepos.py").read_bytes())
    for p in all_packages():
        h.update(repr(p).encode())
        for _, c in p.files:
            if isinstance(c, HostFile):
                h.update(Path(c.path).read_bytes())
    return h.hexdigest()[:16]


@dataclass
class BuiltRepos:
    root: Path
    repos: dict[str, Path]
    build_seconds: float
    cached: bool


def build_e2e_repos_cached(cache_root: str | os.PathLike[str]) -> BuiltRepos:
    """build_e2e_repos into `cache_root/<content hash>/` unless a complete build is there already."""
    root, cached, seconds = cached_build(cache_root, content_hash(), build_e2e_repos)
    return BuiltRepos(root, paths(root), seconds, cached)


def repo_urls(base_url: str, names: Mapping[str, E2ERepo] | None = None) -> dict[str, str]:
    """{repo id: URL} when `dest` is served at base_url (e.g. by tests.upstream.http.RepoHTTPServer)."""
    base = base_url.rstrip("/")
    return {n: f"{base}/{r.relpath}/" for n, r in (names or E2E_REPOS).items()}
