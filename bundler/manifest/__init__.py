"""The bundle manifest: YAML in, a validated Manifest out."""

from .load import load_manifest
from .model import FileEntry, Manifest, RegistryCredentials, RegistrySettings, Repo, Target

__all__ = ["FileEntry", "Manifest", "RegistryCredentials", "RegistrySettings", "Repo", "Target", "load_manifest"]
