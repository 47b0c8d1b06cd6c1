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
from .access import explain_tls, is_trust_problem
from .auth import RegistryAuth, load_credentials

_TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


class _RegistryTLSAdapter(HTTPAdapter):
    """HTTPS with per-host trust: no checks for insecure registries, a CA file where one is given, else system CAs.

    Keys are host:port or a host name alone (any port); hosts not listed keep requests' default verification.
    """

    def __init__(self, verify: dict[str, bool | str], **kwargs):  # noqa: ANN003
        self.per_host = {k.lower(): v for k, v in verify.items()}
        super().__init__(**kwargs)

    def send(self, request, **kwargs):  # type: ignore[override]
        parts = urlsplit(request.url)
        v = self.per_host.get(parts.netloc.lower(), self.per_host.get((parts.hostname or "").lower()))
        if v is None:
            return super().send(request, **kwargs)
        kwargs["verify"] = v
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return super().send(request, **kwargs)


def _strip_auth_on_any_host_change(old_url: str, new_url: str) -> bool:
    """Stricter than requests: a redirect to another host *or port* loses the Authorization header."""
    return urlsplit(old_url).netloc != urlsplit(new_url).netloc or urlsplit(old_url).scheme != urlsplit(new_url).scheme


def registry_session(
    insecure: Iterable[str] = (), credentials=load_credentials, pool: int = 16, timeout: float = 60.0,
    verify: dict[str, bool | str] | None = None,
) -> requests.Session:
    """A pooled session with RegistryAuth attached: unverified TLS for the insecure hosts only, and the CA file
    of `verify` (host -> path) for registries with a private CA."""
    table: dict[str, bool | str] = {**(verify or {}), **{h: False for h in insecure}}
    s = make_session(pool)
    s.mount("https://", _RegistryTLSAdapter(table, pool_connections=pool, pool_maxsize=pool, max_retries=0))
    s.auth = RegistryAuth(credentials, verify=table, timeout=timeout)
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
            if isinstance(e, requests.exceptions.SSLError) and is_trust_problem(e):
                raise explain_tls(url, e, what) from None  # a setting, not a blip: retrying cannot help
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
