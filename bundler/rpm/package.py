"""The solver's answer for one package: a record of its own, so reading a cached plan does not load libsolv."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Package:
    """A package chosen by the solver, with what we need to download, verify and describe it."""

    name: str
    epoch: int
    version: str
    release: str
    arch: str
    repo: str
    location: str  # href relative to the repo's baseurl
    algo: str
    digest: str
    size: int
    license: str = ""
    on_media: bool = False

    @property
    def nevra(self) -> str:
        return f"{self.name}-{self.epoch}:{self.version}-{self.release}.{self.arch}"

    @property
    def filename(self) -> str:
        return self.location.rsplit("/", 1)[-1]

    def to_json(self) -> dict:
        return {
            "name": self.name, "epoch": self.epoch, "version": self.version, "release": self.release,
            "arch": self.arch, "repo": self.repo, "size": self.size, "sha256": self.digest if self.algo == "sha256"
            else None, "checksum": f"{self.algo}:{self.digest}", "location": self.location, "license": self.license,
        }


class SplitByMedia:
    """`shipped` and `from_media` of a resolve's `packages` (the solver's Closure and a cached plan's Resolved)."""

    packages: list[Package]

    @property
    def shipped(self) -> list[Package]:
        return [p for p in self.packages if not p.on_media]

    @property
    def from_media(self) -> list[Package]:
        return [p for p in self.packages if p.on_media]
