"""HTTP for registries: retried like every other download, insecure only where asked, credentials never leaked.

Built on fetch.make_session so blob downloads through fetch/fetch_all share the same pool, auth and TLS
policy as the manifest requests made here.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from ..fetch.download import send_once
from ..fetch.http import make_session
from ..fetch.retry import RetryPolicy, TrustProblem
from .access import explain_tls
from .auth import RegistryAuth, load_credentials


class _RegistryTLSAdapter(HTTPAdapter):
    """HTTPS with per-host trust: no checks for insecure registries, a CA file where one is given, else system CAs.

    Keys are host:port or a host name alone (any port); hosts not listed keep requests' default verification.
    """

    def __init__(self, verify: dict[str, bool | str], **kwargs: Any):
        self.per_host = {k.lower(): v for k, v in verify.items()}
        super().__init__(**kwargs)

    # ignore: HTTPAdapter.send spells out its keywords; this passes them through unchanged and sets only `verify`
    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        parts = urlsplit(str(request.url))
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
    # ignore: requests has no setting for this; replacing the method on this one session is the narrowest change
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
    attempts: int | None = None,
    backoff: float | None = None,
    timeout: float | None = None,
    stream: bool = False,
    ok: tuple[int, ...] = (200,),
    policy: RetryPolicy | None = None,
) -> requests.Response:
    """One registry request under the shared RetryPolicy (backoff, jitter, capped Retry-After on 429/5xx and
    dropped connections).

    Statuses in `ok` and non-retryable errors (404, 401...) are returned for the caller to explain; only
    exhausted retries raise, naming `what` (the image or blob the operator asked for) and the root cause.
    """
    policy = policy or RetryPolicy.from_env()
    changes: dict[str, Any] = {k: v for k, v in (("attempts", attempts), ("backoff", backoff),
                                                     ("read_timeout", timeout))
               if v is not None}
    if changes:
        policy = replace(policy, **changes)

    try:
        return policy.call(lambda _: send_once(session, method, url, headers=headers, data=data, stream=stream,
                                               policy=policy), what=what, url=f"{method} {url}")
    except TrustProblem as e:
        raise explain_tls(url, e.error, what) from None  # a setting, not a blip: retrying cannot help
