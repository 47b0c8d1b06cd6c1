"""One exception type whose message is meant for the operator, not for a developer.

Every failure the operator can fix (bad manifest, unreachable repo, corrupt upstream file) is raised as a
BundlerError carrying one paragraph that names the file, field or artifact and says what to do. The CLI
prints that paragraph and exits non-zero; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class BundlerError(Exception):
    """An error the operator can act on; str(err) is the whole message."""

    exit_code = 1


class ManifestError(BundlerError):
    """The manifest (or a file it includes) is invalid."""

    exit_code = 2


class FetchError(BundlerError):
    """An upstream artifact could not be fetched or did not match its checksum."""


class ResolveError(BundlerError):
    """The requested packages cannot be installed from the declared repos."""
