"""HTTP sessions and the manifest's `mirrors:` host rewriting, shared by every downloader."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit, urlunsplit

from .. import __version__

if TYPE_CHECKING:  # imported by make_session: mirror rewriting alone (a warm plan) does not need requests
    import requests

USER_AGENT = f"airgap-bundler/{__version__}"


def make_session(pool: int = 16) -> requests.Session:
    """A session whose connection pool fits our parallelism (requests' default of 10 would serialise)."""
    import requests
    from requests.adapters import HTTPAdapter

    s = requests.Session()
    adapter = HTTPAdapter(pool_connections=pool, pool_maxsize=pool, max_retries=0)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    s.headers["User-Agent"] = USER_AGENT
    return s


class _LazySession:
    """Stands for a make_session() session, made (and requests imported) on first use."""

    def __init__(self, pool: int) -> None:
        self._pool = pool
        self._session: requests.Session | None = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        with self._lock:
            if self._session is None:
                self._session = make_session(self._pool)
        return getattr(self._session, name)


def lazy_session(pool: int = 16) -> requests.Session:
    """A session for code that may not send any request (a warm plan): requests is loaded only if it does."""
    return cast("requests.Session", _LazySession(pool))


def mirror_key(url: str, mirrors: dict[str, str]) -> str | None:
    """The entry of the mirror table that rewrites url: the longest key matching its host (and path prefix)."""
    parts = urlsplit(url)
    here = f"{parts.netloc}{parts.path}"
    best, best_key = "", None
    for key in mirrors:
        k = key.rstrip("/")
        if (here == k or here.startswith(k + "/") or (k == parts.hostname and "/" not in k)) and len(k) > len(best):
            best, best_key = k, key
    return best_key


def apply_mirrors(url: str, mirrors: dict[str, str]) -> str:
    """Rewrite url by the mirror table: the longest key matching its host (and optional path prefix) wins.

    Keys are 'host' or 'host/path/prefix' (mirrors that reorganise paths, e.g. a Kubernetes mirror without
    the colons of pkgs.k8s.io, or an image mirror that keeps CoreDNS flat). A value
    'mirror.example.com/docker-ce' keeps the scheme and replaces the matched part; a value with a scheme
    ('http://127.0.0.1:8080/k8s') replaces scheme too (plain-HTTP proxies and local stand-ins).
    """
    key = mirror_key(url, mirrors) if mirrors else None
    if key is None:
        return url
    parts = urlsplit(url)
    here = f"{parts.netloc}{parts.path}"
    best = key.rstrip("/")
    target = mirrors[key].rstrip("/")
    rest = here[len(best):] if here.startswith(best) else parts.path
    if "://" in target:
        t = urlsplit(target)
        scheme, netloc, prefix = t.scheme, t.netloc, t.path
    else:
        host, _, prefix = target.partition("/")
        scheme, netloc, prefix = parts.scheme, host, "/" + prefix if prefix else ""
    return urlunsplit((scheme, netloc, prefix + rest, parts.query, parts.fragment))
