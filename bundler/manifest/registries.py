"""`spec.registries`: how to reach each registry host (insecure, CA file, credentials reference), validated.

Paths are relative to the file that names them (like `include:`), checked now (a CA file must be PEM
certificates) so a typo fails before any download. Credentials are only references (variable names, a
Docker config, a credential helper): the manifest, the lock and bundle.json never hold a secret.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ManifestError
from .model import RegistryCredentials, RegistrySettings
from .yamlsrc import read_text, short

if TYPE_CHECKING:
    from .load import _Checker

HOST_RE = re.compile(r"^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?$")
ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HELPER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
CRED_KEYS = {"fromEnv", "dockerConfig", "helper"}


def _path(c: _Checker, value: Any, path: tuple, what: str) -> Path:
    text = c.string(value, path, what=what)
    if "\x00" in text:
        raise c.fail(path, "contains a NUL character; give a plain file path.")
    return (c.file_of(path).parent / Path(text).expanduser()).resolve()


def _ca_file(c: _Checker, value: Any, path: tuple) -> Path:
    ca = _path(c, value, path, "a PEM file with the CA certificate, relative to this manifest")
    try:
        text = read_text(ca, "CA file")
    except ManifestError as e:
        raise c.fail(path, f"{e}") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise c.fail(path, f"{ca} holds no PEM certificate (-----BEGIN CERTIFICATE-----). Give the registry's CA "
                           "certificate in PEM form (convert DER with `openssl x509 -inform der -in ca.der -out "
                           "ca.pem`).")
    import ssl  # here: a manifest without a caFile (and a warm plan) does not load it

    try:
        ssl.create_default_context(cadata=text)
    except (ssl.SSLError, ValueError) as e:
        raise c.fail(path, f"{ca} is not a valid PEM CA certificate ({e}). Give the registry's CA certificate.") \
            from None
    return ca


def _credentials(c: _Checker, value: Any, path: tuple) -> RegistryCredentials:
    raw = c.mapping(value, path, CRED_KEYS)
    given = [k for k in sorted(CRED_KEYS) if raw.get(k) is not None]
    if len(given) != 1:
        raise c.fail(path, "give exactly one of fromEnv ({username: VAR, password: VAR}), dockerConfig (a Docker "
                           "config.json or its directory) or helper (NAME of docker-credential-NAME).")
    key = given[0]
    p = path + (key,)
    if key == "fromEnv":
        env = c.mapping(raw[key], p, {"username", "password"}, ("username", "password"))
        names = tuple(c.string(env[k], p + (k,), ENV_RE, "an environment variable name such as REGISTRY_USER")
                      for k in ("username", "password"))
        return RegistryCredentials(from_env=(names[0], names[1]))
    if key == "helper":
        return RegistryCredentials(helper=c.string(raw[key], p, HELPER_RE,
                                                   "NAME of a docker-credential-NAME program, e.g. ecr-login"))
    cfg = _path(c, raw[key], p, "a Docker config.json or the directory holding it")
    if cfg.is_dir():
        cfg = cfg / "config.json"
    if not cfg.is_file():
        raise c.fail(p, f"{cfg}: no such Docker config file. Give a config.json (as `docker login` writes it) or "
                        "the directory that holds it, relative to this manifest.")
    return RegistryCredentials(docker_config=cfg)


def parse_registries(c: _Checker, raw: Any) -> dict[str, RegistrySettings]:
    """spec.registries -> {host: RegistrySettings}; keys are hosts as contacted (after mirrors), with the port."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise c.fail(("spec", "registries"), "must be a mapping of registry host (host or host:port) -> settings "
                                             "(insecure, caFile, credentials).")
    out: dict[str, RegistrySettings] = {}
    for host, value in raw.items():
        p = ("spec", "registries", host)
        if "://" in host or "/" in host or not HOST_RE.match(host):
            raise c.fail(p, f"{short(host)} is not a registry host: write the host name or address and its port "
                            "only, as in an image reference (registry.example.com:5000), without https:// or a path.")
        r = c.mapping(value if value is not None else {}, p, {"insecure", "caFile", "credentials"})
        insecure = c.boolean(r.get("insecure", False), p + ("insecure",))
        ca = _ca_file(c, r["caFile"], p + ("caFile",)) if r.get("caFile") is not None else None
        if insecure and ca:
            raise c.fail(p, "insecure: true turns certificate checks off and caFile turns them on: keep one. Use "
                            "caFile for a registry with a private CA, insecure for plain HTTP.")
        creds = _credentials(c, r["credentials"], p + ("credentials",)) if r.get("credentials") is not None else None
        key = host.lower()
        if key in out:
            raise c.fail(p, f"the registry {host!r} is listed twice (host names are case-insensitive); keep one.")
        out[key] = RegistrySettings(insecure=insecure, ca_file=ca, credentials=creds)
    return out
