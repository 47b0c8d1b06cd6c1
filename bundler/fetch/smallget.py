"""One GET of a small body (repomd.xml) with the standard library's http.client, for one RetryPolicy attempt.

A warm `plan` answered from the resolved-plan cache makes one small request per repo and nothing else; importing
requests + urllib3 for them costs more CPU than the rest of that plan. This client is used only where it behaves
as requests would: plain http, or https verified against the CA bundle requests would use (REQUESTS_CA_BUNDLE,
CURL_CA_BUNDLE, else certifi's), with no proxy variable set and no .netrc (requests applies both). A redirect or a
TLS failure is handed to requests too (`None`), so redirects and the trust messages stay requests'. Transfers run
under the same watchdog (minimum speed, deadline, Ctrl-C) and read timeout as every other download.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import threading
from types import SimpleNamespace
from urllib.parse import urlsplit

from .. import __version__
from .retry import CANCEL, RETRYABLE_STATUS, Cancelled, RetryPolicy, Transient, root_cause, status_transient
from .watchdog import WATCHDOG, Transfer

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy")
_CONTEXTS: dict[str, ssl.SSLContext] = {}
_CONTEXT_LOCK = threading.Lock()


class Fallback(Exception):
    """This request needs requests' own handling (redirect, TLS trouble): the caller repeats the attempt there."""


def eligible(url: str) -> bool:
    """True when this client does what requests (trust_env) would do for `url`."""
    scheme = urlsplit(url).scheme
    if scheme not in ("http", "https"):
        return False
    if any(os.environ.get(v) or os.environ.get(v.upper()) for v in PROXY_VARS):
        return False
    home = os.path.expanduser("~")
    return not (os.environ.get("NETRC") or os.path.exists(os.path.join(home, ".netrc"))
                or os.path.exists(os.path.join(home, "_netrc")))


def _context() -> ssl.SSLContext:
    """The verifying context requests would build: REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, else certifi (one per
    process and bundle)."""
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if not bundle:
        import certifi

        bundle = certifi.where()
    with _CONTEXT_LOCK:
        ctx = _CONTEXTS.get(bundle)
        if ctx is None:
            ctx = ssl.create_default_context(**({"capath": bundle} if os.path.isdir(bundle) else {"cafile": bundle}))
            _CONTEXTS[bundle] = ctx
        return ctx


def get_small(url: str, policy: RetryPolicy, limit: int) -> tuple[int, bytes]:
    """One attempt: (status, body of at most limit+1 bytes). Transport failures and 408/429/5xx raise Transient
    (with Retry-After), a redirect or a TLS error raises Fallback; the caller checks `eligible` first."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn: http.client.HTTPConnection
    try:
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=policy.connect_timeout,
                                               context=_context())
        else:
            conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=policy.connect_timeout)
    except (OSError, ssl.SSLError) as e:  # a CA bundle that cannot be read: requests says it better
        raise Fallback(str(e)) from None
    t = Transfer(SimpleNamespace(connection=conn), policy)
    try:
        conn.connect()
        assert conn.sock is not None
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sock.settimeout(policy.read_timeout)
        conn.request("GET", path, headers={"User-Agent": f"airgap-bundler/{__version__}", "Accept-Encoding": "identity",
                                           "Connection": "close"})
        WATCHDOG.add(t)
        r = conn.getresponse()
        if 300 <= r.status < 400:
            raise Fallback(f"HTTP {r.status}")
        if r.status in RETRYABLE_STATUS:
            raise status_transient(r.status, r.getheader("Retry-After"))
        body = bytearray()
        while len(body) <= limit and (chunk := r.read(min(1 << 16, limit + 1 - len(body)))):
            body += chunk
            t.bytes += len(chunk)
        if CANCEL.is_set():
            raise Cancelled()
        if t.reason:  # the watchdog shut the socket: what was read is not the whole body
            raise Transient(t.reason)
        return r.status, bytes(body)
    except ssl.SSLError as e:
        raise Fallback(str(e)) from None
    except (OSError, http.client.HTTPException) as e:
        if CANCEL.is_set():
            raise Cancelled() from None
        if t.reason:
            raise Transient(t.reason) from None
        if isinstance(e, http.client.IncompleteRead):
            raise Transient("connection closed before the whole body arrived (truncated)") from None
        raise Transient(root_cause(e, url)) from None
    finally:
        WATCHDOG.remove(t)
        conn.close()
