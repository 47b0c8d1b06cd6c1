"""One GET of a small body (repomd.xml) over a plain socket, for one RetryPolicy attempt.

A warm `plan` answered from the resolved-plan cache makes one small request per repo and nothing else; loading
requests + urllib3 (or even http.client and ssl) for them costs more CPU than the rest of that plan. This client
speaks only the simple case of HTTP/1.1: `Connection: close`, a body framed by Content-Length or by the end of the
connection. It is used only where requests would do the same thing: no proxy variable, no .netrc, no credentials
in the URL, and for https the CA bundle requests would use (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, else certifi's).
Anything else it meets (a redirect, chunked framing, a TLS failure, an answer it cannot parse) raises Fallback, and
the caller repeats the attempt with requests, so redirects, trust messages and odd servers stay requests' business.
Transfers run under the same watchdog (minimum speed, deadline, Ctrl-C) and timeouts as every other download.
"""

from __future__ import annotations

import os
import socket
import threading
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .. import __version__
from .retry import CANCEL, RETRYABLE_STATUS, Cancelled, RetryPolicy, Transient, root_cause, status_transient
from .watchdog import WATCHDOG, Transfer

if TYPE_CHECKING:
    import ssl

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy")
MAX_HEAD = 64 << 10  # status line and headers
_CONTEXTS: dict[str, ssl.SSLContext] = {}
_CONTEXT_LOCK = threading.Lock()


class Fallback(Exception):
    """This request needs requests' own handling (redirect, TLS trouble, framing): repeat the attempt there."""


def eligible(url: str) -> bool:
    """True when this client does what requests (trust_env) would do for `url`."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or not parts.hostname.isascii():
        return False
    if parts.username is not None or any(os.environ.get(v) or os.environ.get(v.upper()) for v in PROXY_VARS):
        return False
    home = os.path.expanduser("~")
    return not (os.environ.get("NETRC") or os.path.exists(os.path.join(home, ".netrc"))
                or os.path.exists(os.path.join(home, "_netrc")))


def _context() -> ssl.SSLContext:
    """The verifying context requests would build: REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, else certifi (one per
    process and bundle)."""
    import ssl

    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if not bundle:
        import certifi

        bundle = certifi.where()
    with _CONTEXT_LOCK:
        ctx = _CONTEXTS.get(bundle)
        if ctx is None:
            ctx = (ssl.create_default_context(capath=bundle) if os.path.isdir(bundle)
                   else ssl.create_default_context(cafile=bundle))
            _CONTEXTS[bundle] = ctx
        return ctx


def get_small(url: str, policy: RetryPolicy, limit: int) -> tuple[int, bytes]:
    """One attempt: (status, body of at most limit+1 bytes). Transport failures and 408/429/5xx raise Transient
    (with Retry-After); what this client leaves to requests raises Fallback. Check `eligible` first."""
    parts = urlsplit(url)
    https = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if https else 80)
    try:
        # bytes (getaddrinfo takes them): an ASCII name needs no IDNA codec, which a str host would load
        sock = socket.create_connection((host.encode("ascii"), port),  # type: ignore[arg-type]
                                        timeout=policy.connect_timeout)
    except OSError as e:
        raise Transient(root_cause(e, url)) from None
    t = Transfer(SimpleNamespace(connection=SimpleNamespace(sock=sock)), policy)
    try:
        if https:
            sock = _tls(sock, host)
            t.response = SimpleNamespace(connection=SimpleNamespace(sock=sock))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(policy.read_timeout)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        netloc = parts.netloc.rpartition("@")[2]
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {netloc}\r\nUser-Agent: airgap-bundler/{__version__}\r\n"
                     "Accept-Encoding: identity\r\nAccept: */*\r\nConnection: close\r\n\r\n".encode("ascii"))
        WATCHDOG.add(t)
        return _read_response(sock, t, limit)
    except (Transient, Fallback):
        raise
    except OSError as e:
        if CANCEL.is_set():
            raise Cancelled() from None
        raise Transient(t.reason or root_cause(e, url)) from None
    finally:
        WATCHDOG.remove(t)
        sock.close()


def _tls(sock: socket.socket, host: str) -> socket.socket:
    import ssl

    try:
        return _context().wrap_socket(sock, server_hostname=host)
    except (ssl.SSLError, ssl.CertificateError, ValueError) as e:
        sock.close()
        raise Fallback(f"TLS: {e}") from None


def _read_response(sock: Any, t: Transfer, limit: int) -> tuple[int, bytes]:
    """Status and body of a `Connection: close` answer; Fallback for what only requests should handle."""
    buf = bytearray()
    while (end := buf.find(b"\r\n\r\n")) < 0:
        if len(buf) > MAX_HEAD:
            raise Fallback("response headers too long")
        chunk = _recv(sock, t)
        if not chunk:
            if not buf:
                raise Transient("the server closed the connection without answering")
            raise Fallback("connection closed inside the response headers")
        buf += chunk
    head = bytes(buf[:end]).decode("latin-1").split("\r\n")
    status_line = head[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/1.") or not status_line[1].isdigit():
        raise Fallback(f"not an HTTP/1.x status line: {head[0][:80]!r}")
    status = int(status_line[1])
    headers = {}
    for line in head[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise Fallback(f"malformed header line {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    if status < 200 or 300 <= status < 400 or "transfer-encoding" in headers:
        raise Fallback(f"HTTP {status}" + (" (chunked)" if "transfer-encoding" in headers else ""))
    if status in RETRYABLE_STATUS:
        raise status_transient(status, headers.get("retry-after"))
    length = headers.get("content-length")
    if length is not None and not length.isdigit():
        raise Fallback(f"Content-Length {length!r}")
    want = min(int(length), limit + 1) if length is not None else limit + 1
    body = buf[end + 4:]
    while len(body) < want:
        chunk = _recv(sock, t)
        if not chunk:
            break
        body += chunk
    if CANCEL.is_set():
        raise Cancelled()
    if t.reason:  # the watchdog shut the socket: what was read is not the whole body
        raise Transient(t.reason)
    if length is not None and len(body) < want:
        raise Transient(f"connection closed after {len(body)} of {length} bytes (truncated)")
    return status, bytes(body[:want])


def _recv(sock: Any, t: Transfer) -> bytes:
    chunk = sock.recv(1 << 16)
    t.bytes += len(chunk)
    return chunk
