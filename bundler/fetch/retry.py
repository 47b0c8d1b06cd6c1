"""The one retry policy for every HTTP request the builder makes, and the root cause of a failure in words.

RPMs, blobs, files, repodata, registry manifests and token requests all go through `RetryPolicy.call`:
jittered exponential backoff, Retry-After honoured up to a cap, a bounded number of attempts, and one
extra try for a body that arrived corrupted (digest or parse mismatch). Limits can be lowered by tests and
operators through environment variables (see `RetryPolicy.from_env`).
"""

from __future__ import annotations

import errno
import os
import random
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import FetchError

if TYPE_CHECKING:  # imported where used: a warm plan's repomd.xml checks (fetch/smallget.py) need neither
    import requests

T = TypeVar("T")
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_STATUS_WORDS = {408: "request timeout", 425: "too early", 429: "too many requests", 500: "internal server error",
                 502: "bad gateway", 503: "service unavailable", 504: "gateway timeout"}

# Process-wide: set on Ctrl-C so every transfer loop and backoff sleep stops within a fraction of a second.
CANCEL = threading.Event()


class Cancelled(KeyboardInterrupt):
    """The operator interrupted the run (Ctrl-C): stop now, keep partial files for the next run.

    A KeyboardInterrupt, so `except Exception` never swallows it and the CLI reports an interruption."""


class Transient(Exception):
    """A failure worth another attempt; `cause` is the root cause in words, for the final message."""

    def __init__(self, cause: str, retry_after: float | None = None, corrupt: bool = False,
                 final: FetchError | None = None):
        super().__init__(cause)
        self.cause, self.retry_after, self.corrupt, self.final = cause, retry_after, corrupt, final


class TrustProblem(FetchError):
    """A TLS setting to fix (untrusted certificate, plain HTTP on an https URL): never worth a retry."""

    def __init__(self, message: str, error: Exception):
        super().__init__(message)
        self.error = error


_SSL_REASON = re.compile(r"\[SSL: ([A-Z_]+)\][^(]*?([a-z][^(]*?)\s*\(_ssl")
_NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST")


def is_trust_problem(error: Exception) -> bool:
    """An untrusted certificate or a server that does not speak TLS: a setting to fix, so never worth a retry
    (unlike a handshake cut short by a flaky network)."""
    m = _SSL_REASON.search(str(error))
    return m is not None and ("CERTIFICATE" in m.group(1) or m.group(1) in _NOT_TLS)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts and backoff, plus the per-object transfer limits the watchdog enforces.

    min_speed (bytes/s) averaged over `window` seconds catches mirrors that trickle; `deadline` (seconds,
    0 = none) bounds one object's whole transfer; connect/read timeouts bound each socket wait.
    """

    attempts: int = 5
    backoff: float = 0.5
    max_backoff: float = 20.0
    retry_after_cap: float = 60.0
    corrupt_retries: int = 1
    connect_timeout: float = 20.0
    read_timeout: float = 60.0
    min_speed: float = 1024.0
    window: float = 30.0
    deadline: float = 0.0
    lock_wait: float = 600.0

    @classmethod
    def from_env(cls) -> RetryPolicy:
        """Defaults, overridden by AIRGAP_BUNDLER_{ATTEMPTS,BACKOFF,READ_TIMEOUT,MIN_SPEED,SPEED_WINDOW,DEADLINE}."""
        p = cls()
        env = {"attempts": "ATTEMPTS", "backoff": "BACKOFF", "read_timeout": "READ_TIMEOUT",
               "connect_timeout": "CONNECT_TIMEOUT", "min_speed": "MIN_SPEED", "window": "SPEED_WINDOW",
               "deadline": "DEADLINE", "retry_after_cap": "RETRY_AFTER_CAP", "lock_wait": "LOCK_WAIT"}
        changes: dict[str, Any] = {}  # field name -> float (int for attempts)
        for fieldname, suffix in env.items():
            raw = os.environ.get(f"AIRGAP_BUNDLER_{suffix}")
            if raw:
                try:
                    value = float(raw)
                except ValueError:
                    raise FetchError(f"AIRGAP_BUNDLER_{suffix}={raw!r} is not a number; unset it or give seconds "
                                     "(bytes per second for MIN_SPEED, a count for ATTEMPTS).") from None
                changes[fieldname] = max(1, int(value)) if fieldname == "attempts" else max(0.0, value)
        return replace(p, **changes) if changes else p

    @property
    def timeout(self) -> tuple[float, float]:
        """(connect, read) for requests."""
        return (self.connect_timeout, self.read_timeout)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt+1: the server's Retry-After (capped) or jittered exponential backoff."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_cap)
        base = min(self.backoff * (2 ** (attempt - 1)), self.max_backoff)
        return base * (0.5 + random.random())

    def call(self, fn: Callable[[int], T], *, what: str, url: str, on_retry: Callable[[], None] | None = None,
             advice: str = "") -> T:
        """fn(attempt) until it returns; Transient failures are retried, anything else propagates.

        The final FetchError names the artifact (`what`), the URL (which shows the mirror) and the last root cause.
        """
        corrupt = 0
        last = "no attempt made"
        for attempt in range(1, self.attempts + 1):
            if CANCEL.is_set():
                raise Cancelled()
            try:
                return fn(attempt)
            except Transient as e:
                last = e.cause
                if e.corrupt:
                    corrupt += 1
                    if corrupt > self.corrupt_retries:
                        raise e.final or FetchError(f"{what}: {url} {e.cause}. {_CORRUPT_ADVICE}") from None
                if attempt == self.attempts:
                    break
                if on_retry:
                    on_retry()
                if CANCEL.wait(self.delay(attempt, e.retry_after)):
                    raise Cancelled() from None
        raise FetchError(
            f"{what}: {url} failed after {self.attempts} attempts; the last one: {last}. "
            + (advice or "Check the network, the mirror or the proxy, then run the same command again: finished "
               "downloads are cached and partial ones resume.")
        )


_CORRUPT_ADVICE = ("It arrived corrupted twice; the mirror or a proxy alters it. Nothing was written; try another "
                   "mirror or report it to the repository's maintainers.")


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        import email.utils  # here: only a Retry-After date needs it

        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def check_status(r: requests.Response) -> None:
    """Raise Transient for 408/425/429/5xx (closing r), with the server's Retry-After."""
    if r.status_code in RETRYABLE_STATUS:
        r.close()
        raise status_transient(r.status_code, r.headers.get("Retry-After"))


def status_transient(status: int, retry_after: str | None) -> Transient:
    """The Transient for a retryable HTTP status (RETRYABLE_STATUS), in words, with the server's Retry-After."""
    words = _STATUS_WORDS.get(status, "")
    return Transient(f"HTTP {status}" + (f" ({words})" if words else "") + " from the server",
                     parse_retry_after(retry_after))


def _chain(exc: BaseException) -> list[BaseException]:
    """exc, what it wraps (urllib3 keeps the real error in .reason or args) and its causes, without repeats."""
    out: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or any(e is seen for seen in out) or len(out) > 20:
            continue
        out.append(e)
        todo += [getattr(e, "reason", None) if isinstance(getattr(e, "reason", None), BaseException) else None,
                 e.__cause__, e.__context__]
        todo += [a for a in e.args if isinstance(a, BaseException)]
    return out


def root_cause(exc: BaseException, url: str = "") -> str:
    """What went wrong, in words an operator can act on (DNS, refused, TLS, timeout, reset, truncated)."""
    import ssl

    import requests
    import urllib3

    chain = _chain(exc)
    host = ""
    if url:
        from urllib.parse import urlsplit

        host = urlsplit(url).hostname or ""
    for e in chain:
        if isinstance(e, socket.gaierror) or "NameResolutionError" in type(e).__name__:
            return f"DNS name not found: cannot resolve {host or 'the host'}"
    for e in chain:
        if isinstance(e, (ssl.SSLError, ssl.CertificateError)) or isinstance(e, requests.exceptions.SSLError):
            detail = getattr(e, "verify_message", "") or getattr(e, "reason", "") or ""
            return f"TLS error ({detail})" if isinstance(detail, str) and detail else f"TLS error ({e})"
    for e in chain:
        if isinstance(e, ConnectionRefusedError) or getattr(e, "errno", None) == errno.ECONNREFUSED:
            return f"connection refused by {host or 'the server'} (nothing listens on that port)"
    for e in chain:
        if isinstance(e, ConnectionResetError) or getattr(e, "errno", None) == errno.ECONNRESET:
            return "connection reset by the server or a proxy"
    for e in chain:
        if isinstance(e, (requests.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError)):
            return "timed out connecting"
    for e in chain:
        if isinstance(e, (requests.ReadTimeout, urllib3.exceptions.ReadTimeoutError, socket.timeout, TimeoutError)):
            return "timed out waiting for data"
    for e in chain:
        if isinstance(e, getattr(urllib3.exceptions, "IncompleteRead", ())) or "IncompleteRead" in type(e).__name__:
            return "connection closed before the whole body arrived (truncated)"
    for e in chain:
        if isinstance(e, OSError) and e.errno is not None and e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return f"no route to {host or 'the host'} ({os.strerror(e.errno)})"
    for e in chain:
        if "RemoteDisconnected" in type(e).__name__ or "closed connection without response" in str(e):
            return "the server closed the connection without answering"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def __getattr__(name: str) -> Any:
    """TRANSPORT_ERRORS, made when first imported (it names requests' and urllib3's exceptions)."""
    if name != "TRANSPORT_ERRORS":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import requests
    import urllib3

    errors = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
              requests.exceptions.ContentDecodingError, urllib3.exceptions.HTTPError, ConnectionError, socket.timeout)
    globals()["TRANSPORT_ERRORS"] = errors
    return errors


def transient_from(exc: BaseException, url: str = "") -> Transient:
    """A transport exception as a Transient carrying its root cause."""
    return Transient(root_cause(exc, url))
