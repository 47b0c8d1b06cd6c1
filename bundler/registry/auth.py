"""Registry credentials and the token dance, so pulls work wherever `docker login` already works.

Credentials come from the Docker client config ($DOCKER_CONFIG/config.json, else ~/.docker/config.json):
`credHelpers` for the host, then `auths`, then `credsStore`, through the `docker-credential-*` programs.
`RegistryAuth` is a requests auth hook: it answers 401 challenges (Bearer with a per-repository scope, or
Basic), caches tokens per (host, scope), refreshes them when they expire mid-build, and only ever signs
requests for the registry host it challenged (a blob redirect to a CDN carries no Authorization).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests
from requests.auth import AuthBase

from ..errors import FetchError
from ..fetch.retry import TRANSPORT_ERRORS, RetryPolicy, Transient, check_status, root_cause
from .reference import DOCKER_HUB, DOCKER_HUB_API

_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')
_REPO_PATH = re.compile(r"^/v2/(.+?)/(?:manifests|blobs|tags|referrers)/")


@dataclass(frozen=True)
class Credentials:
    """What the registry or its token service accepts: a user and password, or an identity (refresh) token."""

    username: str = ""
    password: str = ""
    identity_token: str = ""


def docker_config_dir() -> Path:
    env = os.environ.get("DOCKER_CONFIG")
    return Path(env) if env else Path.home() / ".docker"


def _config_keys(host: str) -> list[str]:
    """The spellings docker login uses as `auths` keys for host."""
    keys = [host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"https://{host}/v2/"]
    if host in (DOCKER_HUB, DOCKER_HUB_API, "index.docker.io"):
        keys = ["https://index.docker.io/v1/", "index.docker.io", DOCKER_HUB, DOCKER_HUB_API, *keys]
    return keys


def _helper(name: str, host: str) -> Credentials | None:
    program = f"docker-credential-{name}"
    path = shutil.which(program)
    if path is None:
        raise FetchError(
            f"registry {host}: the Docker config names the credential helper {program!r} but it is not on PATH. "
            "Install it, or remove credsStore/credHelpers from the config and run docker login again."
        )
    server = "https://index.docker.io/v1/" if host in (DOCKER_HUB, DOCKER_HUB_API) else host
    try:
        out = subprocess.run([path, "get"], input=server, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        raise FetchError(f"registry {host}: the credential helper {program} did not answer in 30 s.") from None
    if out.returncode != 0:
        if "not found" in (out.stdout + out.stderr).lower():
            return None
        raise FetchError(
            f"registry {host}: the credential helper {program} failed: {(out.stderr or out.stdout).strip()}"
        )
    data = json.loads(out.stdout)
    user, secret = data.get("Username", ""), data.get("Secret", "")
    if user == "<token>":
        return Credentials(identity_token=secret)
    return Credentials(user, secret)


def helper_credentials(name: str, host: str) -> Credentials | None:
    """Credentials for host from the program docker-credential-NAME (None if it has none for host)."""
    return _helper(name, host)


def _section(cfg: dict, key: str) -> dict:
    """cfg[key] when it is an object (a config.json section of another shape is ignored, like an absent one)."""
    value = cfg.get(key)
    return value if isinstance(value, dict) else {}


def load_credentials(host: str, config_dir: Path | None = None, config_file: Path | None = None) -> Credentials | None:
    """Credentials for host from the Docker client config (or the given config.json), or None (anonymous)."""
    path = config_file or (config_dir or docker_config_dir()) / "config.json"
    try:
        cfg = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as e:
        raise FetchError(f"registry {host}: cannot read the Docker config {path}: {e}. Fix or remove it.") from None
    if not isinstance(cfg, dict):
        raise FetchError(f"registry {host}: the Docker config {path} is not a JSON object. Fix or remove it.")
    keys = _config_keys(host)
    helpers = _section(cfg, "credHelpers")
    for k in keys:
        if k in helpers:
            return _helper(helpers[k], host)
    auths = _section(cfg, "auths")
    for k in keys:
        entry = auths.get(k)
        if not entry or not isinstance(entry, dict):
            continue
        user, password = entry.get("username", ""), entry.get("password", "")
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, TypeError) as e:  # binascii.Error and UnicodeDecodeError are ValueErrors
                raise FetchError(f"registry {host}: the Docker config {path}: auths[{k!r}].auth is not base64 of "
                                 f"user:password ({type(e).__name__}). Run `docker login {host}` again.") from None
        if user or password or entry.get("identitytoken"):
            return Credentials(user, password, entry.get("identitytoken", ""))
    if cfg.get("credsStore"):
        return _helper(cfg["credsStore"], host)
    return None


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """'Bearer realm="...",service="..."' -> ('bearer', {...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)) for m in _PARAM.finditer(rest)}
    return scheme.lower(), params


def _basic(creds: Credentials) -> str:
    return "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()


class RegistryAuth(AuthBase):
    """Session-wide auth for every registry host: signs each request only for the host that challenged."""

    def __init__(self, credentials=load_credentials, verify: dict[str, bool | str] | None = None,
                 timeout: float = 60.0):
        self._lookup = credentials
        self._creds: dict[str, Credentials | None] = {}
        self._schemes: dict[str, tuple[str, dict[str, str]]] = {}  # netloc -> challenge
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}  # (netloc, scope) -> (header, expiry)
        self._lock = threading.Lock()
        self.timeout = timeout
        self.verify = verify or {}
        self._hosts: set[str] = set()

    def allow(self, netloc: str) -> None:
        """Register a registry host: only registered hosts are ever answered with credentials."""
        with self._lock:
            self._hosts.add(netloc)

    def credentials(self, netloc: str) -> Credentials | None:
        with self._lock:
            if netloc not in self._creds:
                self._creds[netloc] = self._lookup(netloc)
            return self._creds[netloc]

    @staticmethod
    def _scope(url: str, method: str | None = "GET") -> str:
        m = _REPO_PATH.match(urlsplit(url).path)
        if not m:
            return ""
        return f"repository:{m.group(1)}:" + ("pull" if method in ("GET", "HEAD", None) else "pull,push")

    def _header_for(self, url: str, method: str | None = "GET") -> str | None:
        netloc = urlsplit(url).netloc
        with self._lock:
            challenge = self._schemes.get(netloc) if netloc in self._hosts else None
            if challenge is None:
                return None
            if challenge[0] == "basic":
                creds = self._creds.get(netloc)
                return _basic(creds) if creds and creds.username else None
            tok = self._tokens.get((netloc, self._scope(url, method)))
        if tok and tok[1] > time.time():
            return tok[0]
        return None

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        header = self._header_for(r.url or "", r.method)
        if header:
            r.headers["Authorization"] = header
        r.register_hook("response", self._handle_401)
        return r

    def _handle_401(self, resp: requests.Response, **kwargs) -> requests.Response:
        if resp.status_code != 401 or getattr(resp.request, "_ab_retried", False):
            return resp
        req = resp.request
        netloc = urlsplit(req.url).netloc
        with self._lock:
            known = netloc in self._hosts
        if not known or netloc != urlsplit(resp.url).netloc:
            return resp  # a redirect target (CDN) challenged us: never hand it the registry's credentials
        header = resp.headers.get("WWW-Authenticate", "")
        if not header:
            return resp
        scheme, params = parse_challenge(header)
        if scheme == "bearer":
            # Cache under our own scope spelling so the next request for this repository finds the token.
            params["scope"] = self._scope(req.url or "", req.method) or params.get("scope", "")
            value = self._fetch_token(netloc, params, req.url or "")
        elif scheme == "basic":
            creds = self.credentials(netloc)
            if not creds or not creds.username:
                with self._lock:
                    self._schemes[netloc] = (scheme, params)
                return resp
            value = _basic(creds)
        else:
            return resp
        if value is None:
            return resp
        with self._lock:
            self._schemes[netloc] = (scheme, {k: v for k, v in params.items() if k != "scope"})
        resp.content  # noqa: B018 - drain so the connection can be reused
        resp.close()
        prep = req.copy()
        prep.headers["Authorization"] = value
        setattr(prep, "_ab_retried", True)  # marks our one retry (read back with getattr above)  # noqa: B010
        retried = resp.connection.send(prep, **kwargs)
        retried.history.append(resp)
        retried.request = prep
        return retried

    def _fetch_token(self, netloc: str, params: dict[str, str], url: str) -> str | None:
        realm = params.get("realm")
        if not realm:
            return None
        scope = params.get("scope", "")
        creds = self.credentials(netloc)
        query = {"service": params.get("service", "")}
        if scope:
            query["scope"] = scope
        realm_host = urlsplit(realm)
        verify = self.verify.get(realm_host.netloc, self.verify.get(realm_host.hostname or "", True))
        policy = RetryPolicy.from_env()

        def once(_: int) -> requests.Response:
            try:
                if creds and creds.identity_token:
                    r = requests.post(
                        realm,
                        data={**query, "grant_type": "refresh_token", "refresh_token": creds.identity_token,
                              "client_id": "airgap-bundler"},
                        timeout=(policy.connect_timeout, self.timeout),
                        verify=verify,
                    )
                else:
                    auth = (creds.username, creds.password) if creds and creds.username else None
                    r = requests.get(realm, params=query, auth=auth, timeout=(policy.connect_timeout, self.timeout),
                                     verify=verify)
            except TRANSPORT_ERRORS as e:
                raise Transient(root_cause(e, realm)) from None
            check_status(r)
            return r

        r = policy.call(once, what=f"registry {netloc}: the token service", url=realm)
        if r.status_code in (401, 403):
            return None  # the registry's own 401 then produces the operator message
        if r.status_code != 200:
            raise FetchError(f"registry {netloc}: the token service {realm} answered HTTP {r.status_code}.")
        body = r.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            raise FetchError(f"registry {netloc}: the token service {realm} returned no token.")
        ttl = max(int(body.get("expires_in") or 60), 60)
        value = f"Bearer {token}"
        with self._lock:
            self._tokens[(netloc, scope)] = (value, time.time() + ttl - 30)
        return value
