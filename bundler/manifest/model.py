"""The manifest as typed objects: what the rest of the builder reads, never raw dicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

OS_CHOICES = ("el7", "el8", "el9", "el10")
ARCH_CHOICES = ("x86_64", "aarch64")
RUNTIME_CHOICES = ("containerd", "docker")
CNI_CHOICES = ("calico", "flannel", "none")
PREFER_CHOICES = ("media", "newest")
INSTALL_CHOICES = ("packages", "binaries")
FILE_KIND_CHOICES = ("binary", "archive", "manifest", "rpm")


@dataclass(frozen=True)
class Target:
    os: str
    arch: str

    @property
    def releasever(self) -> str:
        """'el9' -> '9', the value yum/dnf substitute for $releasever."""
        return self.os[2:]

    @property
    def oci_platform(self) -> str:
        return {"x86_64": "linux/amd64", "aarch64": "linux/arm64"}[self.arch]


@dataclass(frozen=True)
class Repo:
    name: str
    baseurl: str
    on_media: bool = False
    gpgkeys: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileEntry:
    url: str
    kind: str = "binary"
    sha256: str | None = None
    extract: str | None = None
    name: str | None = None

    @property
    def filename(self) -> str:
        """The name the file gets inside the bundle."""
        if self.name:
            return self.name
        if self.extract:
            return self.extract.rstrip("/").rsplit("/", 1)[-1]
        return self.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class RegistryCredentials:
    """Where a registry's login comes from (a reference only: the secret itself never enters the manifest)."""

    from_env: tuple[str, str] | None = None  # names of the variables holding the user name and the password
    docker_config: Path | None = None  # a Docker client config.json (auths, credHelpers, credsStore)
    helper: str | None = None  # NAME of a docker-credential-NAME program


@dataclass(frozen=True)
class RegistrySettings:
    """How to reach one registry host (as contacted, i.e. after `mirrors:`): TLS trust and credentials."""

    insecure: bool = False  # plain HTTP, or HTTPS without certificate checks
    ca_file: Path | None = None  # PEM CA certificate(s) that sign the registry's TLS certificate
    credentials: RegistryCredentials | None = None


@dataclass(frozen=True)
class Manifest:
    """A validated bundle manifest (includes already merged)."""

    file: Path
    name: str
    version: str
    target: Target
    kubernetes_version: str | None = None
    upgrade_through: tuple[str, ...] = ()  # spec.kubernetes.upgradeThrough: hop releases, ascending, one per minor
    runtime: str = "containerd"
    cni: str = "none"
    prefer: str = "media"
    install: str = "packages"
    repos: tuple[Repo, ...] = ()
    packages: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    files: tuple[FileEntry, ...] = ()
    mirrors: dict[str, str] = field(default_factory=dict)
    registries: dict[str, RegistrySettings] = field(default_factory=dict)  # access settings, not content
    solver_best: bool = True  # spec.solver.best: a request's newest candidate must install (dnf's best=True)

    @property
    def bundle_basename(self) -> str:
        """'<name>-<version>-<os>-<arch>', the stem of the tarball and its top directory."""
        return f"{self.name}-{self.version}-{self.target.os}-{self.target.arch}"

    @property
    def media_repos(self) -> tuple[Repo, ...]:
        return tuple(r for r in self.repos if r.on_media)

    @property
    def shipped_repos(self) -> tuple[Repo, ...]:
        return tuple(r for r in self.repos if not r.on_media)
