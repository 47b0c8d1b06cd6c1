"""What the image code hands back to the build: one bundle.json `images` entry per reference.

Its own module so that pull.py (registries) and daemon.py (the local Docker daemon) both produce it without
importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: An image reference with this prefix is exported from the local Docker daemon, not pulled from a registry.
DAEMON_PREFIX = "docker-daemon:"


@dataclass(frozen=True)
class ImageRecord:
    """One bundle.json `images` entry: size is the bytes of every blob the stored entry references."""

    ref: str
    digest: str
    media_type: str
    size: int
    platforms: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "digest": self.digest, "mediaType": self.media_type, "size": self.size,
                "platforms": list(self.platforms)}
