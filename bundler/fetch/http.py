"""HTTP sessions and the manifest's `mirrors:` host rewriting, shared by every downloader."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from .. import __version__

USER_AGENT = f"airgap-bundler/{__version__}"


def make_session(pool: int = 16) -> requests.Session:
    """A session whose connection pool fits our parallelism (requests' default of 10 would serialise)."""
    s = requests.Session()
    adapter = HTTPAdapter(pool_connections=pool, pool_maxsize=pool, max_retries=0)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    s.headers["User-Agent"] = USER_AGENT
    return s


def apply_mirrors(url: str, mirrors: dict[str, str]) -> str:
    """Rewrite url by the mirror table: the longest key matching its host (and optional path prefix) wins.

    Keys are 'host' or 'host/path/prefix' (mirrors that reorganise paths, e.g. a Kubernetes mirror without
    the colons of pkgs.k8s.io). A value 'mirror.example.com/docker-ce' keeps the scheme and replaces the
    matched part; a value with a scheme ('http://127.0.0.1:8080/k8s') replaces scheme too (plain-HTTP
    proxies and local stand-ins).
    """
    if not mirrors:
        return url
    parts = urlsplit(url)
    here = f"{parts.netloc}{parts.path}"
    best = ""
    for key in mirrors:
        k = key.rstrip("/")
        if (here == k or here.startswith(k + "/") or (k == parts.hostname and "/" not in k)) and len(k) > len(best):
            best = k
    if not best:
        return url
    target = mirrors[best].rstrip("/")
    rest = here[len(best):] if here.startswith(best) else parts.path
    if "://" in target:
        t = urlsplit(target)
        scheme, netloc, prefix = t.scheme, t.netloc, t.path
    else:
        host, _, prefix = target.partition("/")
        scheme, netloc, prefix = parts.scheme, host, "/" + prefix if prefix else ""
    return urlunsplit((scheme, netloc, prefix + rest, parts.query, parts.fragment))
