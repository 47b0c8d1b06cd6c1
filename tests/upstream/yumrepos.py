"""Build real yum repos (rpmbuild + createrepo_c + modifyrepo_c) for the RPM engine's tests.

`build_upstream(dest)` writes, under `dest`, three EL-style repos, each in three metadata flavours:

    media/       media-xz/      media-zstd/      the OS install media (BaseOS-like, Packages/<letter>/)
    extras/      extras-xz/     extras-zstd/     kubernetes + container runtime (pkgs.k8s.io-like, flat)
    modular/     modular-xz/    modular-zstd/    EL8 AppStream-like, with modules.yaml

`<repo>` has gz-compressed metadata plus sqlite databases (EL7-EL9 style), `<repo>-xz` and
`<repo>-zstd` have xz/zstd-compressed metadata without sqlite (Fedora/EL10 style). The variants
share the RPMs (`Packages` is a relative symlink to `../<repo>/Packages`). Checksums are sha256.

`build_upstream_cached(cache_root)` builds once per content hash (the package definitions, this
file and the host shell files) and reuses the result afterwards.

`dnf_resolve()` and `dnf_install()` run the distribution's own solver (dnf/libsolv) against served
repos as the reference for the RPM engine's tests.

Package definitions are in MEDIA / EXTRAS / MODULAR below; REPOS maps repo name -> RepoDef.

API: make_spec(), pkg()/PkgDef, build_rpms(), createrepo(), modules_yaml(), build_upstream(),
build_upstream_cached(), copy_upstream(), Upstream; dnf_resolve(), dnf_resolve_detailed(),
dnf_install(), dnf_enable_modules(), dnf_options(), rpm_qa(), full_nevra(), DnfError.

Gotchas handled here: %post needs /bin/sh from a package (bash stub = the host's dash + the glibc
stub with the shared objects it needs, so scriptlets really run in the chroot; they may only use
shell builtins); Debian's /etc/dnf/dnf.conf says best=False, skip_if_unavailable=True (we pass our
own empty config and set EL's values); dnf refuses `-c /dev/null`; modules requiring
`platform: [el8]` need `module_platform_id=platform:el8`; Debian's createrepo_c 0.17 cannot write
zstd, the venv's createrepo_c 1.x (PyPI) can and is preferred; Debian's rpm db is ~/.rpmdb.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

# Bump to invalidate every cached build (the hash also covers this file's text).
FORMAT_VERSION = 1

COMPRESSIONS: tuple[str, ...] = ("gz", "xz", "zstd")


# --------------------------------------------------------------------------- package definitions
@dataclass(frozen=True)
class HostFile:
    """Payload copied from a file of the build host (used for the real /bin/sh of the stub shell)."""

    path: str
    mode: int = 0o755


FileContent = Union[str, bytes, HostFile]


@dataclass(frozen=True)
class PkgDef:
    name: str
    version: str
    release: str
    arch: str = "noarch"
    epoch: int = 0
    requires: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    obsoletes: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    recommends: tuple[str, ...] = ()
    files: tuple[tuple[str, FileContent], ...] = ()
    post: str | None = None
    summary: str = ""
    preun: str | None = None
    postun: str | None = None
    config: tuple[str, ...] = ()  # paths marked %config(noreplace)
    description: str = ""
    dirs: tuple[str, ...] = ()  # directories the package owns (%dir), so removing it removes them

    @property
    def evr(self) -> str:
        return (f"{self.epoch}:" if self.epoch else "") + f"{self.version}-{self.release}"

    @property
    def nevra(self) -> str:
        """dnf's spelling: name-[epoch:]version-release.arch (epoch only when non-zero)."""
        return f"{self.name}-{self.evr}.{self.arch}"

    @property
    def nevra_full(self) -> str:
        """modulemd's spelling: name-epoch:version-release.arch (epoch always)."""
        return f"{self.name}-{self.epoch}:{self.version}-{self.release}.{self.arch}"

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}-{self.release}.{self.arch}.rpm"

    def spec(self) -> str:
        return make_spec(self.name, self.version, self.release, self.arch, self.requires, self.provides,
                         self.obsoletes, self.conflicts, dict(self.files), self.post, epoch=self.epoch,
                         recommends=self.recommends, summary=self.summary, preun=self.preun, postun=self.postun,
                         config=self.config, description=self.description, dirs=self.dirs)


def pkg(name: str, version: str, release: str, arch: str = "noarch", *,
        requires: Iterable[str] = (), provides: Iterable[str] = (), obsoletes: Iterable[str] = (),
        conflicts: Iterable[str] = (), recommends: Iterable[str] = (),
        files: Mapping[str, FileContent] | None = None, post: str | None = None,
        epoch: int = 0, summary: str = "", preun: str | None = None, postun: str | None = None,
        config: Iterable[str] = (), description: str = "", dirs: Iterable[str] = ()) -> PkgDef:
    return PkgDef(name, version, release, arch, epoch, tuple(requires), tuple(provides), tuple(obsoletes),
                  tuple(conflicts), tuple(recommends), tuple(sorted((files or {}).items())), post, summary,
                  preun, postun, tuple(sorted(config)), description, tuple(dirs))


def _file_mode(path: str, content: FileContent) -> int:
    if isinstance(content, HostFile):
        return content.mode
    return 0o755 if re.search(r"/s?bin/", path) else 0o644


def make_spec(name: str, version: str, release: str, arch: str = "noarch",
              requires: Iterable[str] = (), provides: Iterable[str] = (), obsoletes: Iterable[str] = (),
              conflicts: Iterable[str] = (), files: Mapping[str, FileContent] | None = None,
              post: str | None = None, *, epoch: int = 0, recommends: Iterable[str] = (),
              summary: str = "", preun: str | None = None, postun: str | None = None,
              config: Iterable[str] = (), description: str = "", dirs: Iterable[str] = ()) -> str:
    """RPM spec text for a synthetic package. `files` maps absolute paths to their content.

    noarch packages carry `BuildArch: noarch`; arch packages get their arch from `rpmbuild --target`.
    Automatic dependency generation is off, so the dependencies are exactly the ones given (plus
    the ones rpm always adds: `Requires(post): /bin/sh` for a %post, `name = evr`, `name(isa) = evr`).
    """
    files = files or {}
    lines = [
        "%define _build_id_links none",
        "%define debug_package %{nil}",
        "%global __os_install_post %{nil}",
        f"Name: {name}",
    ]
    if epoch:
        lines.append(f"Epoch: {epoch}")
    lines += [
        f"Version: {version}",
        f"Release: {release}",
        f"Summary: {summary or f'Synthetic test package {name}'}",
        "License: MIT",
        "URL: https://example.invalid/airgap-bundler-tests",
        "AutoReqProv: no",
    ]
    if arch == "noarch":
        lines.append("BuildArch: noarch")
    for tag, values in (("Requires", requires), ("Provides", provides), ("Obsoletes", obsoletes),
                        ("Conflicts", conflicts), ("Recommends", recommends)):
        lines += [f"{tag}: {v}" for v in values]
    description = description or f"Synthetic package {name} for airgap-bundler tests (arch {arch})."
    lines += ["", "%description", description, "",
              "%install", "rm -rf %{buildroot}", "mkdir -p %{buildroot}"]
    lines += [f"mkdir -p '%{{buildroot}}{d}'" for d in dirs]
    for path, content in sorted(files.items()):
        mode = f"{_file_mode(path, content):o}"
        dest = "%{buildroot}" + path
        lines.append(f"mkdir -p \"$(dirname '{dest}')\"")
        if isinstance(content, HostFile):
            lines.append(f"cp -L '{content.path}' '{dest}'")
        else:
            raw = content.encode() if isinstance(content, str) else content
            lines.append(f"printf '%s' '{base64.b64encode(raw).decode()}' | base64 -d > '{dest}'")
        lines.append(f"chmod {mode} '{dest}'")
    for section, body in (("%post", post), ("%preun", preun), ("%postun", postun)):
        if body is not None:
            lines += ["", section, body.rstrip("\n")]
    config = set(config)
    lines += ["", "%files"]
    lines += [f"%dir {d}" for d in dirs]
    lines += [f"%config(noreplace) {p}" if p in config else p for p in sorted(files)]
    lines.append("")
    return "\n".join(lines)


def _host_shell() -> dict[str, HostFile]:
    """The host's /bin/sh and the shared objects it needs, so scriptlets really run in a chroot.

    Returns {} when /bin/sh is not an ELF we can resolve with ldd (the stub /bin/sh is then empty and
    %post scriptlets fail with a warning, which rpm/dnf tolerate).
    """
    sh = os.path.realpath("/bin/sh")
    try:
        out = subprocess.run(["ldd", sh], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    libs: dict[str, HostFile] = {}
    for line in out.splitlines():
        m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if m and os.path.exists(m.group(1)):
            libs[m.group(1)] = HostFile(m.group(1), 0o755)
    if not libs:
        return {}
    return {"/bin/sh": HostFile(sh, 0o755), **libs}


HOST_SHELL = _host_shell()
_SH_LIBS = {p: f for p, f in HOST_SHELL.items() if p != "/bin/sh"}
_SH = {"/bin/sh": HOST_SHELL.get("/bin/sh", "")}

EL9 = "el9"
K8S_REL = "150500.1.1"
POST_LOG = "/etc/airgap-post.log"


def _post(name: str) -> str:
    """A %post that really runs under the stub /bin/sh (builtins only) and leaves a trace."""
    return f'echo "{name} %post ran" >> {POST_LOG}\nexit 0'


MEDIA: tuple[PkgDef, ...] = (
    pkg("filesystem", "3.16", f"2.{EL9}", "x86_64", files={"/etc/filesystem.release": "el9 test\n"},
        summary="The basic directory layout"),
    pkg("glibc", "2.34", f"100.{EL9}", "x86_64", requires=["filesystem"],
        provides=["libc.so.6()(64bit)", "rtld(GNU_HASH)"], files=_SH_LIBS,
        summary="Shared objects the stub /bin/sh needs"),
    pkg("bash", "5.1.8", f"6.{EL9}", "x86_64", requires=["filesystem", "glibc"],
        provides=["/bin/sh", "/bin/bash"], files=_SH, summary="Stub shell providing /bin/sh"),
    pkg("libfoo", "1.0", f"1.{EL9}", "x86_64", provides=["libfoo.so.1()(64bit)"],
        files={"/usr/lib64/libfoo.so.1": "libfoo\n"}, post=_post("libfoo")),
    pkg("conntrack-tools", "1.4.7", f"2.{EL9}", "x86_64", requires=["libfoo.so.1()(64bit)"],
        provides=["conntrack = 1.4.7"], files={"/usr/sbin/conntrack": "#conntrack\n"}),
    pkg("iptables", "1.8.8", f"6.{EL9}", "x86_64", files={"/usr/sbin/iptables": "#iptables\n"}, post=_post("iptables")),
    pkg("ethtool", "6.2", f"1.{EL9}", "x86_64",
        files={"/usr/sbin/ethtool": "#ethtool\n", "/usr/share/ethtool/data.conf": "# only in filelists\n"}),
    pkg("libbar", "1.0", f"1.{EL9}", "x86_64", provides=["libbar.so.1()(64bit)"],
        files={"/usr/lib64/libbar.so.1": "libbar 1\n"}),
    pkg("oldtool", "1.0", f"1.{EL9}", "noarch", files={"/usr/bin/oldtool": "#oldtool\n"}),
    pkg("libpair", "1.0", f"1.{EL9}", "i686", provides=["libpair.so.1"],
        files={"/usr/lib/libpair.so.1": "libpair 32\n"}),
    pkg("libpair", "1.0", f"1.{EL9}", "x86_64", provides=["libpair.so.1()(64bit)"],
        files={"/usr/lib64/libpair.so.1": "libpair 64\n"}),
    pkg("pairuser", "1.0", f"1.{EL9}", "x86_64", requires=["libpair.so.1()(64bit)"],
        files={"/usr/bin/pairuser": "#pairuser\n"}),
    pkg("python3", "3.9.18", f"1.{EL9}", "x86_64", provides=["python(abi) = 3.9"],
        files={"/usr/bin/python3": "#python3\n"}),
    pkg("runc", "1.1.12", f"1.{EL9}", "x86_64", files={"/usr/bin/runc": "#runc\n"}),
    pkg("httpd-tools", "2.4.57", f"5.{EL9}", "x86_64", files={"/usr/bin/htpasswd": "#htpasswd\n"}),
    pkg("bash-completion", "2.11", f"5.{EL9}", "noarch",
        files={"/usr/share/bash-completion/bash_completion": "# completion\n"}),
)

K8S_VERSIONS = ("1.29.8", "1.30.3", "1.30.4")

# What each kubeadm double prints for `kubeadm config images list` (written here, not taken from the builder's
# table, so the builder is checked against it). 1.30.3's etcd is deliberately not the table's 3.5.12-0: a test
# builds with it to see that the bundle follows the kubeadm it ships.
KUBEADM_DOUBLE_ETCD = {"1.29.8": "3.5.12-0", "1.30.3": "3.5.99-0", "1.30.4": "3.5.12-0"}


def kubeadm_double(v: str, etcd: str | None = None, pause: str = "3.9", coredns: str = "v1.11.1") -> str:
    """/usr/bin/kubeadm of the test upstream: a TEST DOUBLE answering the two questions the builder asks."""
    images = [f"registry.k8s.io/{n}:v{v}" for n in
              ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")]
    images += [f"registry.k8s.io/pause:{pause}", f"registry.k8s.io/etcd:{etcd or KUBEADM_DOUBLE_ETCD[v]}",
               f"registry.k8s.io/coredns/coredns:{coredns}"]
    return ("#!/bin/sh\n# kubeadm TEST DOUBLE (airgap-bundler test upstream), not the real kubeadm\n"
            'case "$*" in\n'
            f'  "version -o short") echo v{v} ;;\n'
            f'  "config images list --kubernetes-version v{v}") printf \'%s\\n\' {" ".join(images)} ;;\n'
            '  *) echo "kubeadm TEST DOUBLE: unsupported: $*" >&2; exit 2 ;;\n'
            "esac\n")


def _k8s(v: str) -> list[PkgDef]:
    minor = ".".join(v.split(".")[:2]) + ".0"
    cni = "kubernetes-cni = 1.3.0" if v.startswith("1.29.") else "kubernetes-cni >= 1.4.0"
    return [
        pkg("kubeadm", v, K8S_REL, "x86_64",
            requires=[f"kubelet >= {minor}", f"kubectl >= {minor}", "(cri-tools >= 1.29.0 if kubelet)"],
            files={"/usr/bin/kubeadm": kubeadm_double(v)}),
        pkg("kubelet", v, K8S_REL, "x86_64",
            requires=["conntrack", cni, "/usr/share/ethtool/data.conf", "iptables >= 1.4.21",
                      "(containerd-runtime or docker-runtime)", "libbar >= 2.0"],
            files={"/usr/bin/kubelet": f"#kubelet {v}\n", "/etc/sysconfig/kubelet": "KUBELET_EXTRA_ARGS=\n"},
            post=_post("kubelet")),
        pkg("kubectl", v, K8S_REL, "x86_64", recommends=["bash-completion"],
            files={"/usr/bin/kubectl": f"#kubectl {v}\n"}),
    ]


EXTRAS: tuple[PkgDef, ...] = (
    *[p for v in K8S_VERSIONS for p in _k8s(v)],
    pkg("kubernetes-cni", "1.3.0", K8S_REL, "x86_64", files={"/opt/cni/bin/bridge": "#cni 1.3\n"}),
    pkg("kubernetes-cni", "1.4.0", K8S_REL, "x86_64", files={"/opt/cni/bin/bridge": "#cni 1.4\n"}),
    pkg("cri-tools", "1.30.1", K8S_REL, "x86_64", files={"/usr/bin/crictl": "#crictl\n"}),
    pkg("libbar", "2.0", f"1.{EL9}", "x86_64", provides=["libbar.so.2()(64bit)"],
        files={"/usr/lib64/libbar.so.2": "libbar 2\n"}),
    pkg("containerd.io", "1.7.19", f"3.1.{EL9}", "x86_64",
        provides=["containerd-runtime", "containerd = 1.7.19"], obsoletes=["runc"], conflicts=["runc"],
        files={"/usr/bin/containerd": "#containerd\n", "/etc/containerd/config.toml": "version = 2\n"},
        post=_post("containerd.io")),
    pkg("newtool", "2.0", f"1.{EL9}", "noarch", obsoletes=["oldtool < 2"], provides=["oldtool = 2.0"],
        files={"/usr/bin/newtool": "#newtool\n"}),
)

CT1_REL = "4.module_el8.1.0+298+41f9343a"
CT2_REL = "7.module_el8.3.0+699+d61d9c41"
MODULAR_STREAMS: dict[str, tuple[PkgDef, ...]] = {
    "1.0": (
        pkg("podman", "1.6.4", CT1_REL, "x86_64", requires=["conmon >= 2:2.0"], files={"/usr/bin/podman": "#1.6\n"}),
        pkg("conmon", "2.0.6", CT1_REL, "x86_64", epoch=2, files={"/usr/bin/conmon": "#2.0.6\n"}),
    ),
    "2.0": (
        pkg("podman", "2.2.1", CT2_REL, "x86_64", requires=["conmon >= 2:2.0.22"],
            files={"/usr/bin/podman": "#2.2\n"}),
        pkg("conmon", "2.0.22", CT2_REL, "x86_64", epoch=2, files={"/usr/bin/conmon": "#2.0.22\n"}),
    ),
}
MODULE_NAME = "container-tools"
DEFAULT_STREAM = "2.0"
MODULAR: tuple[PkgDef, ...] = (
    *[p for s in MODULAR_STREAMS.values() for p in s],
    # Same name as a modular package, higher version, NOT in any module: dnf hides it.
    pkg("podman", "3.0.1", "1.el8", "x86_64", requires=["conmon"], files={"/usr/bin/podman": "#3.0 hidden\n"}),
    pkg("toolbox", "0.0.99", "1.el8", "noarch", requires=["podman"], files={"/usr/bin/toolbox": "#toolbox\n"}),
)


def modules_yaml() -> str:
    """modulemd v2 documents for both container-tools streams plus modulemd-defaults v1."""
    docs = []
    versions = {"1.0": ("8010020191211133540", "830d479e"), "2.0": ("8030020201124131330", "830d479e")}
    for stream, pkgs in MODULAR_STREAMS.items():
        version, context = versions[stream]
        rpms = "\n".join(f"    - {p.nevra_full}" for p in sorted(pkgs, key=lambda p: p.name))
        comps = "\n".join(f"      {p.name}:\n        rationale: Part of the stack.\n        ref: stream-{stream}"
                          for p in sorted(pkgs, key=lambda p: p.name))
        api = "\n".join(f"    - {p.name}" for p in sorted(pkgs, key=lambda p: p.name))
        docs.append(f"""---
document: modulemd
version: 2
data:
  name: {MODULE_NAME}
  stream: "{stream}"
  version: {version}
  context: {context}
  arch: x86_64
  summary: Stable versions of podman {stream}
  description: >-
    Synthetic {MODULE_NAME} stream {stream} for airgap-bundler tests.
  license:
    module:
    - MIT
  dependencies:
  - buildrequires:
      platform: [el8]
    requires:
      platform: [el8]
  profiles:
    common:
      rpms:
      - podman
  api:
    rpms:
{api}
  components:
    rpms:
{comps}
  artifacts:
    rpms:
{rpms}
...
""")
    docs.append(f"""---
document: modulemd-defaults
version: 1
data:
  module: {MODULE_NAME}
  stream: "{DEFAULT_STREAM}"
  profiles:
    "1.0": [common]
    "2.0": [common]
...
""")
    return "".join(docs)


@dataclass(frozen=True)
class RepoDef:
    name: str
    packages: tuple[PkgDef, ...]
    letters: bool  # Packages/<first letter>/ like BaseOS/AppStream, else flat Packages/
    modules: str | None = None
    description: str = ""


REPOS: dict[str, RepoDef] = {
    "media": RepoDef("media", MEDIA, True, description="OS install media (onMedia)"),
    "extras": RepoDef("extras", EXTRAS, False, description="kubernetes + containerd"),
    "modular": RepoDef("modular", MODULAR, True, modules_yaml(), description="EL8 AppStream-like, modular"),
}


def repo_dirname(repo: str, compression: str = "gz") -> str:
    return repo if compression == "gz" else f"{repo}-{compression}"


@dataclass
class Upstream:
    """A built tree. `root/<repo_dirname>/` are the repos."""

    root: Path
    build_seconds: float = 0.0
    cached: bool = False
    repos: dict[str, RepoDef] = field(default_factory=lambda: dict(REPOS))

    def path(self, repo: str, compression: str = "gz") -> Path:
        return self.root / repo_dirname(repo, compression)

    def rpm_path(self, repo: str, p: PkgDef) -> Path:
        return self.path(repo) / _pkg_relpath(p, self.repos[repo].letters)

    def rpm_relpath(self, repo: str, p: PkgDef) -> str:
        """Path of the RPM relative to the repo root (the `location href`)."""
        return _pkg_relpath(p, self.repos[repo].letters)

    def find(self, repo: str, nevra: str) -> PkgDef:
        for p in self.repos[repo].packages:
            if nevra in (p.nevra, p.nevra_full):
                return p
        raise KeyError(f"{nevra} not in {repo}")


def _pkg_relpath(p: PkgDef, letters: bool) -> str:
    return f"Packages/{p.name[0].lower()}/{p.filename}" if letters else f"Packages/{p.filename}"


# --------------------------------------------------------------------------- tools
def _tool(name: str) -> str:
    """Prefer the venv's tool (createrepo_c 1.x from PyPI can write zstd), else PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found (apt-get install -y rpm createrepo-c dnf)")
    return found


def _run(cmd: Sequence[str], **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=300, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return proc


def build_rpms(pkgs: Iterable[PkgDef], workdir: Path, defines: Mapping[str, str] | None = None) -> dict[PkgDef, Path]:
    """rpmbuild every definition; one rpmbuild process per target arch (noarch builds with x86_64).

    `defines`: extra rpm macros, e.g. {"_binary_payload": "w1.gzdio"} for big payloads built fast."""
    extra = [a for k, v in (defines or {}).items() for a in ("--define", f"{k} {v}")]
    pkgs = list(dict.fromkeys(pkgs))
    groups: dict[str, list[PkgDef]] = {}
    for p in pkgs:
        groups.setdefault("x86_64" if p.arch == "noarch" else p.arch, []).append(p)

    def build(target: str, members: list[PkgDef]) -> None:
        top = workdir / f"rpmbuild-{target}"
        specdir = top / "SPECS"
        specdir.mkdir(parents=True, exist_ok=True)
        specs = []
        for p in members:
            sp = specdir / f"{p.name}-{p.version}-{p.release}.{p.arch}.spec"
            sp.write_text(p.spec())
            specs.append(str(sp))
        _run(["rpmbuild", "--quiet", "--define", f"_topdir {top}", *extra, "--target", target, "-bb", *specs])

    with ThreadPoolExecutor(max_workers=max(1, len(groups))) as ex:
        for f in [ex.submit(build, t, m) for t, m in groups.items()]:
            f.result()
    out: dict[PkgDef, Path] = {}
    for p in pkgs:
        target = "x86_64" if p.arch == "noarch" else p.arch
        path = workdir / f"rpmbuild-{target}" / "RPMS" / p.arch / p.filename
        if not path.exists():
            raise RuntimeError(f"rpmbuild did not produce {path}")
        out[p] = path
    return out


def createrepo(repo_dir: Path, compression: str = "gz", *, source: Path | None = None,
               modules: str | None = None, database: bool | None = None) -> None:
    """createrepo_c (sha256) into `repo_dir`, scanning `source` (default repo_dir); add modules.yaml."""
    database = (compression == "gz") if database is None else database
    cmd = [_tool("createrepo_c"), "--checksum", "sha256", "--general-compress-type", compression,
           "--database" if database else "--no-database", "--workers", "2"]
    if source is not None and source != repo_dir:
        cmd += ["--outputdir", str(repo_dir), str(source)]
    else:
        cmd.append(str(repo_dir))
    _run(cmd)
    if modules is not None:
        with tempfile.TemporaryDirectory() as td:
            y = Path(td) / "modules.yaml"
            y.write_text(modules)
            _run([_tool("modifyrepo_c"), "--mdtype=modules", f"--compress-type={compression}",
                  "--checksum=sha256", str(y), str(repo_dir / "repodata")])


def build_upstream(dest: str | os.PathLike[str], repos: Mapping[str, RepoDef] | None = None,
                   compressions: Sequence[str] = COMPRESSIONS) -> Upstream:
    """Build all repos (each in every compression flavour) under `dest`."""
    t0 = time.monotonic()
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    repos = dict(REPOS if repos is None else repos)
    with tempfile.TemporaryDirectory(prefix="rpmbuild-", dir=root) as td:
        built = build_rpms((p for r in repos.values() for p in r.packages), Path(td))
        for r in repos.values():
            base = root / r.name
            for p in r.packages:
                target = base / _pkg_relpath(p, r.letters)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(built[p], target)
    if (root / "media").exists():
        (root / "media" / "media.repo").write_text(
            "[InstallMedia]\nname=Airgap Test Linux 9\nmediaid=None\nmetadata_expire=-1\ngpgcheck=0\ncost=500\n")

    def one(r: RepoDef, comp: str) -> None:
        base = root / r.name
        if comp == "gz":
            createrepo(base, comp, modules=r.modules)
            return
        var = root / repo_dirname(r.name, comp)
        var.mkdir(exist_ok=True)
        link = var / "Packages"
        if not link.is_symlink():
            link.symlink_to(f"../{r.name}/Packages")
        createrepo(var, comp, source=base, modules=r.modules)

    # gz first (it writes repodata/ into the source dir the others scan), then the variants.
    with ThreadPoolExecutor(max_workers=3) as ex:
        for f in [ex.submit(one, r, "gz") for r in repos.values() if "gz" in compressions]:
            f.result()
        for f in [ex.submit(one, r, c) for r in repos.values() for c in compressions if c != "gz"]:
            f.result()
    return Upstream(root, time.monotonic() - t0, False, repos)


def content_hash(repos: Mapping[str, RepoDef] | None = None) -> str:
    """Hash of everything a build depends on: the definitions, this file, the host shell payload."""
    repos = dict(REPOS if repos is None else repos)
    h = hashlib.sha256()
    h.update(f"v{FORMAT_VERSION}".encode())
    h.update(Path(__file__).read_bytes())
    h.update(_tool("createrepo_c").encode())
    for r in sorted(repos.values(), key=lambda r: r.name):
        h.update(repr(r).encode())
        for p in r.packages:
            for _, c in p.files:
                if isinstance(c, HostFile):
                    h.update(Path(c.path).read_bytes())
    return h.hexdigest()[:16]


def cached_build(cache_root: str | os.PathLike[str], key: str,
                 build: Callable[[Path], None]) -> tuple[Path, bool, float]:
    """`build(dir)` into `cache_root/<key>/` unless a complete build is there; (dir, cached, seconds).

    Builds go to a temporary directory renamed into place when complete; stale keys are dropped.
    """
    cache_root = Path(cache_root)
    cache_root.mkdir(parents=True, exist_ok=True)
    final = cache_root / key
    if (final / ".complete").exists():
        return final, True, float((final / ".complete").read_text() or 0)
    t0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=f"{key}.tmp-", dir=cache_root))
    build(tmp)
    seconds = time.monotonic() - t0
    (tmp / ".complete").write_text(f"{seconds:.2f}\n")
    try:
        tmp.rename(final)
    except OSError:  # a concurrent session won the race
        shutil.rmtree(tmp, ignore_errors=True)
    for old in cache_root.iterdir():
        if old.name != key and old.is_dir() and not old.name.startswith(f"{key}."):
            shutil.rmtree(old, ignore_errors=True)
    return final, False, seconds


def build_upstream_cached(cache_root: str | os.PathLike[str], repos: Mapping[str, RepoDef] | None = None) -> Upstream:
    """Build into `cache_root/<content hash>/` unless a complete build is already there."""
    root, cached, seconds = cached_build(cache_root, content_hash(repos), lambda d: build_upstream(d, repos))
    return Upstream(root, 0.0 if cached else seconds, cached, dict(REPOS if repos is None else repos))


def copy_upstream(up: Upstream, dest: str | os.PathLike[str]) -> Upstream:
    """A private, mutable copy (for tests that change the repos)."""
    dest = Path(dest)
    shutil.copytree(up.root, dest, symlinks=True, dirs_exist_ok=True)
    return Upstream(dest, 0.0, True, up.repos)


# --------------------------------------------------------------------------- dnf as reference solver
class DnfError(RuntimeError):
    """dnf could not resolve or install; `.output` has dnf's text."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message + ("\n" + output if output else ""))
        self.output = output


def _dnf_python() -> str:
    dnf_bin = shutil.which("dnf") or "/usr/bin/dnf"
    with open(dnf_bin, encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
    if first.startswith("#!"):
        return first[2:].strip().split()[0]
    return "/usr/bin/python3"


def dnf_options(repos: Mapping[str, str], installroot: Path, releasever: str | int = "9", *,
                weak_deps: bool = False, best: bool = True) -> list[str]:
    """Common dnf CLI options: isolated from the host's config, repos, plugins and cache.

    * `-c <installroot>/etc/dnf/dnf.conf` (written empty here; dnf refuses `-c /dev/null`): Debian's
      /etc/dnf/dnf.conf has best=False and skip_if_unavailable=True, EL's has best=True.
    * `module_platform_id=platform:elN`: modules that require `platform: [elN]` are otherwise
      unusable ("Modular dependency problems").
    """
    conf = installroot / "etc" / "dnf" / "dnf.conf"
    if not conf.exists():
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text("[main]\n")
    opts = ["-c", str(conf), "--installroot", str(installroot), "--releasever", str(releasever),
            "--setopt=reposdir=/dev/null", "--noplugins", "--nogpgcheck", "-y",
            f"--setopt=cachedir={installroot}/var/cache/dnf",
            f"--setopt=module_platform_id=platform:el{releasever}",
            f"--setopt=install_weak_deps={weak_deps}", f"--setopt=best={best}",
            "--setopt=skip_if_unavailable=False", "--setopt=metadata_expire=0",
            "--setopt=max_parallel_downloads=1"]
    for name, url in repos.items():
        opts.append(f"--repofrompath={name},{url}")
    return opts


def _dnf(args: Sequence[str], timeout: float = 120) -> tuple[int, str]:
    env = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8")
    proc = subprocess.run(["dnf", *args], capture_output=True, text=True, timeout=timeout, env=env)
    return proc.returncode, proc.stdout + proc.stderr


def dnf_enable_modules(repos: Mapping[str, str], installroot: Path, modules: Sequence[str],
                       releasever: str | int = "9") -> None:
    """`dnf module enable NAME:STREAM` in `installroot` (state goes to etc/dnf/modules.d there)."""
    if not modules:
        return
    rc, out = _dnf([*dnf_options(repos, installroot, releasever), "module", "enable", *modules])
    if rc != 0:
        raise DnfError(f"dnf module enable {' '.join(modules)} failed", out)


_RESOLVE_SCRIPT = r"""
import json, os, sys
import dnf, dnf.exceptions
a = json.load(sys.stdin)
for d in ("var/log", "var/cache/dnf", "var/lib/dnf"):
    os.makedirs(os.path.join(a["installroot"], d), exist_ok=True)
base = dnf.Base()
c = base.conf
c.installroot = a["installroot"]
c.cachedir = a["installroot"] + "/var/cache/dnf"
c.logdir = a["installroot"] + "/var/log"
c.persistdir = a["installroot"] + "/var/lib/dnf"
c.releasever = a["releasever"]
c.reposdir = []
c.gpgcheck = False
c.best = a["best"]
c.skip_if_unavailable = False
c.install_weak_deps = a["weak_deps"]
c.module_platform_id = "platform:el" + a["releasever"]
c.metadata_expire = 0
for name, url in a["repos"]:
    base.repos.add_new_repo(name, c, baseurl=[url], gpgcheck=False, skip_if_unavailable=False)
try:
    base.fill_sack(load_system_repo=True)
    for spec in a["packages"]:
        base.install(spec, strict=True)
    base.resolve()
except dnf.exceptions.Error as e:
    json.dump({"error": str(e)}, sys.stdout)
    sys.exit(0)
out = []
for p in base.transaction.install_set:
    out.append({"name": p.name, "epoch": p.epoch, "version": p.version, "release": p.release,
                "arch": p.arch, "repo": p.reponame, "location": p.location})
json.dump({"packages": out}, sys.stdout)
"""


@dataclass(frozen=True)
class ResolvedPkg:
    name: str
    epoch: int
    version: str
    release: str
    arch: str
    repo: str
    location: str

    @property
    def nevra(self) -> str:
        return f"{self.name}-{f'{self.epoch}:' if self.epoch else ''}{self.version}-{self.release}.{self.arch}"

    @property
    def nevra_full(self) -> str:
        return f"{self.name}-{self.epoch}:{self.version}-{self.release}.{self.arch}"


_NEVRA_RE = re.compile(r"^(?P<name>.+)-(?:(?P<epoch>\d+):)?(?P<version>[^-:]+)-(?P<release>[^-]+)\.(?P<arch>[^.]+)$")


def full_nevra(nevra: str) -> str:
    """'name-1.0-1.x86_64' -> 'name-0:1.0-1.x86_64' (the bundler's and modulemd's spelling)."""
    m = _NEVRA_RE.match(nevra)
    if not m:
        raise ValueError(f"not a NEVRA: {nevra}")
    return f"{m['name']}-{m['epoch'] or 0}:{m['version']}-{m['release']}.{m['arch']}"


def dnf_resolve_detailed(repos: Mapping[str, str], packages: Sequence[str], releasever: str | int = "9", *,
                         modules: Sequence[str] = (), weak_deps: bool = False, best: bool = True,
                         installroot: str | os.PathLike[str] | None = None) -> list[ResolvedPkg]:
    """What `dnf install PACKAGES` would install into an empty installroot (dnf's own Goal)."""
    with tempfile.TemporaryDirectory(prefix="dnf-resolve-") as td:
        root = Path(installroot) if installroot is not None else Path(td) / "root"
        root.mkdir(parents=True, exist_ok=True)
        dnf_enable_modules(repos, root, modules, releasever)
        payload = json.dumps({"installroot": str(root), "releasever": str(releasever), "best": best,
                              "weak_deps": weak_deps, "repos": list(repos.items()), "packages": list(packages)})
        proc = subprocess.run([_dnf_python(), "-c", _RESOLVE_SCRIPT], input=payload, capture_output=True,
                              text=True, timeout=120, env=dict(os.environ, LC_ALL="C.UTF-8"))
    if proc.returncode != 0:
        raise DnfError("dnf resolve helper crashed", proc.stdout + proc.stderr)
    res = json.loads(proc.stdout)
    if "error" in res:
        raise DnfError(f"dnf cannot resolve {' '.join(packages)}: {res['error']}", proc.stderr)
    return sorted((ResolvedPkg(**p) for p in res["packages"]), key=lambda p: p.nevra)


def dnf_resolve(repos: Mapping[str, str], packages: Sequence[str], releasever: str | int = "9", *,
                modules: Sequence[str] = (), weak_deps: bool = False, best: bool = True,
                epoch_always: bool = False) -> dict[str, str]:
    """{NEVRA: repo id} of the closure dnf installs for `packages` into an empty installroot.

    NEVRAs are spelled like dnf (`name-[epoch:]version-release.arch`), or with the epoch always
    spelled out (`name-0:...`, like bundler.rpm.solver.nevra_of) when `epoch_always`.
    `set(result)` is the closure. Raises DnfError when dnf finds no solution.
    """
    return {(p.nevra_full if epoch_always else p.nevra): p.repo
            for p in dnf_resolve_detailed(repos, packages, releasever, modules=modules,
                                          weak_deps=weak_deps, best=best)}


def dnf_install(repos: Mapping[str, str], packages: Sequence[str], releasever: str | int = "9", *,
                modules: Sequence[str] = (), weak_deps: bool = False, best: bool = True,
                installroot: str | os.PathLike[str] | None = None,
                extra_args: Sequence[str] = ()) -> tuple[bool, str]:
    """`dnf install` into a fresh empty installroot (kept if `installroot` is given). -> (ok, output)."""
    with tempfile.TemporaryDirectory(prefix="dnf-install-") as td:
        root = Path(installroot) if installroot is not None else Path(td) / "root"
        root.mkdir(parents=True, exist_ok=True)
        out = ""
        if modules:
            rc, out = _dnf([*dnf_options(repos, root, releasever), "module", "enable", *modules])
            if rc != 0:
                return False, out
        rc, out2 = _dnf([*dnf_options(repos, root, releasever, weak_deps=weak_deps, best=best),
                         *extra_args, "install", *packages])
        return rc == 0, out + out2


def rpm_qa(installroot: str | os.PathLike[str]) -> set[str]:
    """NEVRAs installed in `installroot` (Debian's rpm keeps its db under ~/.rpmdb, rooted there)."""
    proc = _run(["rpm", "--root", str(installroot), "-qa", "--qf",
                 "%{NAME}-%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}.%{ARCH}\\n"])
    return {line for line in proc.stdout.splitlines() if line}
