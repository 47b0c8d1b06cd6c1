"""Image references as Docker and containerd normalise them, so `nginx` and `docker.io/library/nginx:latest` match."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import BundlerError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$|^sha512:[0-9a-f]{128}$")
_HOST = re.compile(r"^(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$")


class ReferenceError(BundlerError):
    """An image reference in the manifest cannot be parsed."""

    exit_code = 2


@dataclass(frozen=True)
class Reference:
    """registry/repository[:tag][@digest], normalised (docker.io, library/, latest)."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """registry/repository: what `tag` and `digest` qualify."""
        return f"{self.registry}/{self.repository}"

    @property
    def identifier(self) -> str:
        """What the manifests endpoint is asked for: the digest if pinned, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def api_host(self) -> str:
        """The host that serves the API (Docker Hub's API is not at docker.io)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    def with_digest(self, digest: str | None) -> Reference:
        return Reference(self.registry, self.repository, self.tag, digest)

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse_reference(text: str) -> Reference:
    """Parse and normalise an image reference: `nginx` -> docker.io/library/nginx:latest."""
    raw = text.strip()
    rest, digest = raw, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.match(digest):
            raise ReferenceError(
                f"image {text!r}: {digest!r} is not a valid digest (expected sha256: followed by 64 hex digits)."
            )
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.match(tag):
            raise ReferenceError(f"image {text!r}: {tag!r} is not a valid tag.")
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry, repo = first.lower(), remainder
        if not _HOST.match(registry):
            raise ReferenceError(f"image {text!r}: {first!r} is not a valid registry host.")
    else:
        registry, repo = DOCKER_HUB, rest
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in repo:
        repo = f"library/{repo}"
    if not repo or not all(_COMPONENT.match(c) for c in repo.split("/")):
        raise ReferenceError(
            f"image {text!r}: the repository name {repo!r} is invalid (lowercase letters, digits and . _ - "
            "separated by /). Write it as REGISTRY/NAME:TAG, e.g. registry.k8s.io/pause:3.9."
        )
    if tag is None and digest is None:
        tag = "latest"
    return Reference(registry, repo, tag, digest)
