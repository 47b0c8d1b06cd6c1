"""HTTP for registries: retried like every other download, insecure only where asked, credentials never leaked.

Built on fetch.make_session so blob downloads through fetch/fetch_all share the same pool, auth and TLS
policy as the manifest requests made here.
"""

from __future__ import annotations

import random
import time
import warnings
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from ..errors import FetchError
from ..fetch.download import RETRYABLE_STATUS
from ..fetch.http import make_session
from .auth import RegistryAuth, load_credentials

_TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


class _UnverifiedAdapter(HTTPAdapter):
    """TLS without certificate checks, mounted only for hosts listed as insecure registries."""

    def send(self, request, **kwargs):  # type: ignore[override]
        kwargs["verify"] = False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return super().send(request, **kwargs)


def _strip_auth_on_any_host_change(old_url: str, new_url: str) -> bool:
    """Stricter than requests: a redirect to another host *or port* loses the Authorization header."""
    return urlsplit(old_url).netloc != urlsplit(new_url).netloc or urlsplit(old_url).scheme != urlsplit(new_url).scheme


def registry_session(
    insecure: Iterable[str] = (), credentials=load_credentials, pool: int = 16, timeout: float = 60.0
) -> requests.Session:
    """A pooled session with RegistryAuth attached and unverified TLS for the insecure hosts only."""
    insecure = set(insecure)
    s = make_session(pool)
    for host in insecure:
        s.mount(f"https://{host}/", _UnverifiedAdapter(pool_connections=pool, pool_maxsize=pool, max_retries=0))
    s.auth = RegistryAuth(credentials, verify={h: False for h in insecure}, timeout=timeout)
    s.should_strip_auth = _strip_auth_on_any_host_change  # type: ignore[method-assign]
    return s


def request(
    session: requests.Session,
    method: str,
    url: str,
    *,
    what: str,
    headers: dict[str, str] | None = None,
    data: bytes | Callable[[], Any] | None = None,
    attempts: int = 5,
    backoff: float = 0.5,
    timeout: float = 60.0,
    stream: bool = False,
    ok: tuple[int, ...] = (200,),
) -> requests.Response:
    """One registry request, retried with jittered exponential backoff on 429/5xx and dropped connections.

    Statuses in `ok` and non-retryable errors (404, 401...) are returned for the caller to explain; only
    exhausted retries raise, naming `what` (the image or blob the operator asked for).
    """
    last = ""
    for attempt in range(1, attempts + 1):
        try:
            body = data() if callable(data) else data
            r = session.request(method, url, headers=headers, data=body, timeout=timeout, stream=stream)
        except _TRANSIENT as e:
            last = f"{type(e).__name__}"
        else:
            if r.status_code not in RETRYABLE_STATUS:
                return r
            last = f"HTTP {r.status_code}"
            delay = r.headers.get("Retry-After", "")
            r.close()
            if delay.isdigit() and attempt < attempts:
                time.sleep(min(int(delay), 30))
                continue
        if attempt < attempts:
            time.sleep(backoff * (2 ** (attempt - 1)) * (0.5 + random.random()))
    raise FetchError(
        f"{what}: {method} {url} failed after {attempts} attempts ({last}). Check the network, the registry or "
        "the mirror, then run the same command again: finished downloads are cached."
    )
