"""From a manifest to the exact set of RPMs to ship: metadata, modularity, one solver job, media policy."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ManifestError, ResolveError
from ..manifest.model import Manifest
from .modules import ModuleIndex, host_streams, parse_modules_yaml, render_modules_yaml
from .package import Package, SplitByMedia
from .repomd import RepoMetadata, RepoReader, read_repomds
from .solver import Solver

# What the installer itself needs on the hosts, added to every bundle that carries packages:
# CentOS 7 minimal hosts have no python3 (install.py bootstraps it from the bundle), and the local
# registry's password file needs bcrypt hashes, which only htpasswd makes there.
EL7_INSTALLER_PACKAGES = ("python3",)
K8S_INSTALLER_PACKAGES = ("httpd-tools",)

log = logging.getLogger(__name__)


@dataclass
class Closure(SplitByMedia):
    """The solver's answer: every package of the transaction, split into shipped and taken from the media."""

    packages: list[Package]
    metadata: dict[str, RepoMetadata]
    modules: ModuleIndex = field(default_factory=ModuleIndex)
    requests: list[str] = field(default_factory=list)
    used_filelists: bool = False
    active_streams: dict[str, str] = field(default_factory=dict)  # module -> stream the solve used
    stream_reasons: dict[str, str] = field(default_factory=dict)  # module -> why its stream is active
    media_repos: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)  # said loudly by plan/build (e.g. spec.solver.best: false)
    hops: dict[str, list[Package]] = field(default_factory=dict)  # hop version -> its kubeadm, kubelet, kubectl

    def host_streams(self) -> list[str]:
        """NAME:STREAM the installer enables on the hosts: the streams this closure was solved with."""
        return host_streams(self.modules, self.active_streams, self.stream_reasons, {p.nevra for p in self.shipped})

    def modules_yaml(self) -> str | None:
        """The bundle repo's modules.yaml: shipped streams, plus enabled streams the media does not carry."""
        carry = [k for k in self.host_streams() if not self.modules.streams[_module_key(k)].repos & self.media_repos]
        return render_modules_yaml(self.modules, {p.nevra for p in self.shipped}, carry)


def requested_packages(manifest: Manifest) -> list[str]:
    reqs = list(manifest.packages)
    if not reqs:
        return reqs
    extra = list(EL7_INSTALLER_PACKAGES) if manifest.target.os == "el7" else []
    if manifest.kubernetes_version:
        extra += K8S_INSTALLER_PACKAGES
    return reqs + [p for p in extra if p not in reqs]


KUBE_PACKAGES = ("kubeadm", "kubelet", "kubectl")


def check_kubernetes_release(manifest: Manifest, packages: list[Package]) -> None:
    """kubeadm/kubelet/kubectl must be spec.kubernetes.version: the bundle's control-plane images are that release,
    and a kubelet newer than the API server breaks the version skew policy (an unpinned `kubelet` takes the newest)."""
    want = manifest.kubernetes_version
    if not want:
        return
    wrong = sorted(f"{p.name}-{p.version}" for p in packages if p.name in KUBE_PACKAGES and p.version != want)
    if wrong:
        raise ManifestError(
            f"{manifest.file}: spec.kubernetes.version is {want}, but spec.packages resolve to {', '.join(wrong)}. "
            f"kubeadm, kubelet and kubectl must be that release (the control-plane images are {want}, and a kubelet "
            f"newer than the API server is not supported): pin them in spec.packages as kubeadm-{want}, "
            f"kubelet-{want}, kubectl-{want}, or change spec.kubernetes.version."
        )


def resolve(manifest: Manifest, reader: RepoReader, metadata: dict[str, RepoMetadata] | None = None) -> Closure:
    """Resolve the manifest's packages against its repos; raise ResolveError with the chain on failure.

    metadata: the repos' repomd.xml when the caller has read them already (see plancache)."""
    requests = requested_packages(manifest)
    if not requests:
        return Closure([], {}, requests=[])
    if metadata is None:
        metadata = read_repomds(reader, manifest.repos)
    modules = ModuleIndex()
    for md in metadata.values():
        if md.has("modules"):
            modules.merge(parse_modules_yaml(reader.get(md, "modules"), f"repo '{md.repo.name}'", md.repo.name))
    active, reasons = modules.resolve_streams(manifest.modules, f"{manifest.file}: spec.modules")
    hidden, modular, modular_names = modules.hidden_and_modular(active)

    solver = Solver(manifest.target.arch)
    for name, md in metadata.items():
        # the decompressed XML's path names the .solv; the metadata itself is fetched and parsed only without one
        solver.add_repo(name, reader.unpacked(md, "primary"), on_media=md.repo.on_media,
                        data=_parseable(reader, md))

    def attempt() -> list[Package]:
        considered = solver.visible(hidden, modular, modular_names)
        return solver.solve(requests, prefer_media=manifest.prefer == "media", considered=considered,
                            best=manifest.solver_best)

    def load_filelists() -> None:
        for name, md in metadata.items():
            if md.has("filelists"):
                solver.add_filelists(name, reader.get(md, "filelists"))

    # A file dependency that primary.xml cannot answer needs the full file lists (dnf does the same);
    # a failed solve gets one more try with them before it is reported.
    used_filelists = solver.file_deps_unprovided()
    if used_filelists:
        load_filelists()
    try:
        packages = attempt()
    except ResolveError:
        if used_filelists:
            raise
        load_filelists()
        used_filelists = True
        packages = attempt()
    check_kubernetes_release(manifest, packages)
    warnings = list(solver.warnings)
    hops: dict[str, list[Package]] = {}
    for hop in manifest.upgrade_through:
        hop_packages = _solve_hop(manifest, solver, hop, hidden, modular, modular_names)
        warnings += solver.warnings
        hops[hop] = [p for p in hop_packages if p.name in KUBE_PACKAGES]
        packages = _union(packages, hop_packages)
    for w in warnings:
        log.warning(w)
    return Closure(packages, metadata, modules, requests, used_filelists, active, reasons,
                   {r.name for r in manifest.media_repos}, warnings, hops)


def _solve_hop(manifest: Manifest, solver: Solver, hop: str, hidden: set[str], modular: set[str],
               modular_names: set[str]) -> list[Package]:
    """The closure of one hop's kubeadm, kubelet and kubectl (their own dependencies, e.g. the kubernetes-cni
    that release requires), solved in the pool of the main solve; exactly that release or a clear error."""
    where = f"{manifest.file}: spec.kubernetes.upgradeThrough {hop}"
    try:
        got = solver.solve([f"{name}-{hop}" for name in KUBE_PACKAGES], prefer_media=manifest.prefer == "media",
                           considered=solver.visible(hidden, modular, modular_names), best=manifest.solver_best)
    except ResolveError as e:
        raise ResolveError(f"{where}: {str(e).replace('spec.packages: ', '', 1)} Each hop needs kubeadm, kubelet "
                           f"and kubectl {hop} in spec.repos (pkgs.k8s.io has one repository per minor: add the "
                           f"v{'.'.join(hop.split('.')[:2])} one).") from None
    wrong = sorted(f"{p.name}-{p.version}" for p in got if p.name in KUBE_PACKAGES and p.version != hop)
    if wrong:
        raise ResolveError(f"{where}: the hop's packages resolve to {', '.join(wrong)}; a hop ships exactly "
                           f"kubeadm, kubelet and kubectl {hop}. Check the repos in spec.repos.")
    return got


def _union(a: list[Package], b: list[Package]) -> list[Package]:
    """Both closures, each NEVRA once, in the solver's order."""
    seen = {p.nevra: p for p in a}
    for p in b:
        seen.setdefault(p.nevra, p)
    return sorted(seen.values(), key=lambda p: (p.name, p.arch, p.nevra))


def _module_key(stream: str) -> tuple[str, str]:
    """'NAME:STREAM' as the (name, stream) key of ModuleIndex.streams."""
    name, _, st = stream.partition(":")
    return name, st


def _parseable(reader: RepoReader, md: RepoMetadata) -> Callable[[], Path]:
    """The primary XML to parse, fetched only when the solver has no .solv cache for it."""
    return lambda: reader.parseable(md, "primary")
