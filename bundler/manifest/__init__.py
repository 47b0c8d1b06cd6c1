"""The bundle manifest: YAML in, a validated Manifest out."""

from .load import load_manifest
from .model import FileEntry, Manifest, Repo, Target

__all__ = ["FileEntry", "Manifest", "Repo", "Target", "load_manifest"]
