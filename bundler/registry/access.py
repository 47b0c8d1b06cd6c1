"""Per-registry access: the manifest's `spec.registries` merged with --insecure-registry, as one policy.

Settings are looked up by the host actually contacted (after `mirrors:`): host:port first, then the host
name alone, so `registry.example.com` covers every port. The policy answers three questions for the
transport: which TLS trust to use (system CAs, a CA file, or none), which hosts may fall back to plain
HTTP, and where credentials come from (the reference in the manifest, else the Docker client config).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..errors import FetchError, ManifestError
from ..fetch.retry import _NOT_TLS, _SSL_REASON
from ..manifest.model import RegistryCredentials, RegistrySettings
from .auth import Credentials, helper_credentials, load_credentials

if TYPE_CHECKING:  # client.py imports this module
    from .client import RegistryClient

_DOCKER_HUB_NAMES = ("docker.io", "index.docker.io", "registry-1.docker.io")


def merge_settings(from_manifest: Mapping[str, RegistrySettings],
                   insecure: Iterable[str] = ()) -> dict[str, RegistrySettings]:
    """The manifest's settings plus each --insecure-registry HOST (the flag wins over a caFile for that host)."""
    out = {k.lower(): v for k, v in from_manifest.items()}
    for host in insecure:
        key = host.lower()
        out[key] = replace(out.get(key, RegistrySettings()), insecure=True, ca_file=None)
    for alias in _DOCKER_HUB_NAMES:  # docker.io is served from registry-1.docker.io
        if alias in out:
            for other in _DOCKER_HUB_NAMES:
                out.setdefault(other, out[alias])
    return out


def settings_for(table: Mapping[str, RegistrySettings], netloc: str) -> RegistrySettings | None:
    """The entry for netloc (host:port), else for its host name alone."""
    netloc = netloc.lower()
    if netloc in table:
        return table[netloc]
    return table.get(urlsplit(f"//{netloc}").hostname or "")


def tls_verify(table: Mapping[str, RegistrySettings]) -> dict[str, bool | str]:
    """requests' `verify` per configured host: False for insecure, the CA file's path, else absent (system CAs)."""
    return {host: (False if s.insecure else str(s.ca_file)) for host, s in table.items() if s.insecure or s.ca_file}


def _from_env(ref: RegistryCredentials, host: str, source: Path | None = None) -> Credentials:
    user_var, pass_var = ref.from_env or ("", "")
    missing = [v for v in (user_var, pass_var) if not os.environ.get(v)]
    if missing:
        where = f"{source}: " if source else ""
        raise ManifestError(
            f"{where}spec.registries[{host!r}].credentials.fromEnv names {' and '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not set (or empty). Export {' and '.join(missing)} before "
            "running bundler, or drop the credentials entry to use the Docker login."
        )
    return Credentials(os.environ[user_var], os.environ[pass_var])


def check_credentials(table: Mapping[str, RegistrySettings], source: Path | None = None) -> None:
    """Fail before any download when a referenced variable is missing (names only: never a value)."""
    for host, s in table.items():
        if s.credentials and s.credentials.from_env:
            _from_env(s.credentials, host, source)


def credential_lookup(table: Mapping[str, RegistrySettings]) -> Callable[[str], Credentials | None]:
    """A `credentials(netloc)` function for RegistryAuth: the manifest's reference for the host, else docker login."""

    def lookup(netloc: str) -> Credentials | None:
        s = settings_for(table, netloc)
        ref = s.credentials if s else None
        if ref is None:
            return load_credentials(netloc)
        if ref.from_env:
            return _from_env(ref, netloc)
        if ref.helper:
            return helper_credentials(ref.helper, netloc)
        return load_credentials(netloc, config_file=ref.docker_config)

    return lookup


def explain_tls(url: str, error: Exception, what: str) -> FetchError:
    """A TLS failure with a registry is a setting, not a network blip: say which one to change."""
    host = urlsplit(url).netloc
    m = _SSL_REASON.search(str(error))
    code, reason = (m.group(1), m.group(2).strip()) if m else ("", type(error).__name__)
    ca = (f'`"{host}": {{caFile: ca.pem}}` if its certificate comes from a private CA (the CA certificate in PEM, '
          "relative to the manifest)")
    plain = (f'`"{host}": {{insecure: true}}` for plain HTTP or to skip certificate checks (the same as '
             f"--insecure-registry {host})")
    if code in _NOT_TLS:
        why, fixes = f"{host} does not speak TLS ({reason}); it is probably a plain-HTTP registry", (plain, ca)
    elif "CERTIFICATE" in code:
        why, fixes = f"the certificate of {host} is not trusted ({reason})", (ca, plain)
    else:
        why, fixes = f"the TLS handshake with {host} failed ({reason})", (ca, plain)
    return FetchError(f"{what}: {why}. Say how to reach it in the manifest under spec.registries: {fixes[0]}, or "
                      f"{fixes[1]}.")


def registry_client(mirrors: Mapping[str, str], settings: Mapping[str, RegistrySettings],
                    insecure: Iterable[str] = (), pool: int = 16, source: Path | None = None) -> RegistryClient:
    """The RegistryClient for a manifest: mirrors, TLS trust, plain-HTTP hosts and credentials in one place."""
    from .client import RegistryClient
    from .transport import registry_session

    table = merge_settings(settings, insecure)
    check_credentials(table, source)
    plain = [h for h, s in table.items() if s.insecure]
    session = registry_session(plain, credential_lookup(table), pool=pool, verify=tls_verify(table))
    return RegistryClient(mirrors=dict(mirrors), insecure=plain, session=session)
