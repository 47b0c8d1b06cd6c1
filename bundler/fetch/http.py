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
    """Rewrite url's host by the mirror table.

    A value 'mirror.example.com/docker-ce' keeps the scheme and prefixes the path; a value with a scheme
    ('http://127.0.0.1:8080/k8s') replaces scheme, host and path prefix (useful for plain-HTTP proxies).
    """
    if not mirrors:
        return url
    parts = urlsplit(url)
    target = mirrors.get(parts.netloc) or mirrors.get(parts.hostname or "")
    if not target:
        return url
    if "://" in target:
        t = urlsplit(target)
        scheme, netloc, prefix = t.scheme, t.netloc, t.path
    else:
        host, _, prefix = target.partition("/")
        scheme, netloc, prefix = parts.scheme, host, "/" + prefix if prefix else ""
    return urlunsplit((scheme, netloc, prefix.rstrip("/") + parts.path, parts.query, parts.fragment))
