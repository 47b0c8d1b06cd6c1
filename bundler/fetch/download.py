"""Verified, resumable, retried, parallel downloads into the content-addressed cache.

Every byte is hashed once, as it arrives (a resumed partial is hashed once before the rest streams in).
One writer per digest at a time, across threads and processes (a lock file per digest): a second build
waits for the first and takes its cache hit. Retries, backoff and transfer limits come from RetryPolicy.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from ..errors import FetchError
from . import retry
from .cache import Cache
from .retry import (
    CANCEL,
    RETRYABLE_STATUS,
    Cancelled,
    RetryPolicy,
    Transient,
    TrustProblem,
    check_status,
    is_trust_problem,
    root_cause,
)
from .watchdog import WATCHDOG, Transfer

if TYPE_CHECKING:  # requests is loaded with the first session (fetch.http.make_session), not by importing this
    import requests

CHUNK = 1 << 20
LOCK_POLL = 0.1
__all__ = ["RETRYABLE_STATUS", "Item", "Stats", "cancel_downloads", "fetch", "fetch_all", "fetch_unpinned",
           "read_body", "send_once"]


@dataclass(frozen=True)
class Item:
    """One thing to download: where from, what digest it must have, and how to name it in messages."""

    url: str
    algo: str
    digest: str
    size: int | None = None
    label: str = ""
    headers: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


@dataclass
class Stats:
    """Counters for the build summary."""

    downloaded_bytes: int = 0
    downloaded: int = 0
    cache_hits: int = 0
    retries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **kw: int) -> None:
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)


def cancel_downloads() -> None:
    """Ctrl-C: every transfer and backoff in this process stops within a watchdog tick; partials stay."""
    CANCEL.set()
    WATCHDOG.abort_all()


def send_once(session: requests.Session, method: str, url: str, *, policy: RetryPolicy,
              headers: dict[str, str] | None = None, data: bytes | Callable[[], Any] | None = None,
              stream: bool = True) -> requests.Response:
    """One attempt of any request: a transport failure or 429/5xx raises Transient with its root cause
    (and the server's Retry-After) for RetryPolicy.call; every other answer is returned."""
    try:
        body = data() if callable(data) else data
        r = session.request(method, url, headers=headers, data=body, timeout=policy.timeout, stream=stream)
    except retry.TRANSPORT_ERRORS as e:
        if CANCEL.is_set():
            raise Cancelled() from None
        from requests.exceptions import SSLError

        if isinstance(e, SSLError) and is_trust_problem(e):
            raise TrustProblem(
                f"{url}: {root_cause(e, url)}. This is a TLS setting, not a network blip, so it was not retried: "
                "trust the server's CA on this machine (or in spec.registries for a registry), or use its "
                "http:// address if it serves plain HTTP.", e) from None
        raise Transient(root_cause(e, url)) from None
    check_status(r)
    return r


def reset_cancel() -> None:
    """Allow downloads again after cancel_downloads (long-lived processes, tests)."""
    CANCEL.clear()


def _open(session: requests.Session, url: str, headers: dict[str, str], policy: RetryPolicy) -> requests.Response:
    return send_once(session, "GET", url, headers=headers, policy=policy)


def _pump(r: requests.Response, write: Callable[[bytes], None], policy: RetryPolicy, url: str,
          decode: bool = True) -> int:
    """Copy r's body through write() under the watchdog; return the body bytes read off the wire.

    read1 keeps every byte that arrived even if the connection dies mid-chunk, so a retry resumes from there.
    """
    t = Transfer(r, policy)
    WATCHDOG.add(t)
    try:
        while chunk := r.raw.read1(CHUNK, decode_content=decode):
            write(chunk)
            t.bytes += len(chunk)
    except retry.TRANSPORT_ERRORS as e:
        if CANCEL.is_set():
            raise Cancelled() from None
        raise Transient(t.reason or root_cause(e, url)) from None
    finally:
        WATCHDOG.remove(t)
    if CANCEL.is_set():
        raise Cancelled()
    if t.reason:
        raise Transient(t.reason)
    expected = r.headers.get("Content-Length", "")
    wire = r.raw.tell()
    if expected.isdigit() and wire < int(expected):
        raise Transient(f"connection closed after {wire} of {expected} bytes (truncated)")
    return t.bytes


def read_body(r: requests.Response, policy: RetryPolicy, url: str, limit: int, decode: bool = True) -> bytes:
    """A small body (metadata, manifest, token) in memory, under the same throughput limits; at most limit+1
    bytes are kept, so the caller can refuse an oversized answer."""
    buf = bytearray()

    def keep(chunk: bytes) -> None:
        if len(buf) <= limit:
            buf.extend(chunk[: limit + 1 - len(buf)])
        if len(buf) > limit:
            raise _TooBig()

    try:
        _pump(r, keep, policy, url, decode)
    except _TooBig:
        pass
    finally:
        r.close()
    return bytes(buf)


class _TooBig(Exception):
    pass


def _acquire(cache: Cache, item: Item, policy: RetryPolicy) -> int | None:
    """Take the per-digest writer lock; None if another writer published the blob while we waited.

    The wait is bounded by progress: if the holder's partial file does not grow for policy.lock_wait
    seconds, give up with a message (a live holder keeps the lock; a killed one releases it at once).
    """
    fd = cache.try_lock(item.algo, item.digest)
    if fd is not None:
        return fd
    part = cache.partial(item.algo, item.digest)
    last_size, last_change = -1, time.monotonic()
    while True:
        if cache.get(item.algo, item.digest) is not None:
            return None
        if CANCEL.wait(LOCK_POLL):
            raise Cancelled()
        fd = cache.try_lock(item.algo, item.digest)
        if fd is not None:
            return fd
        try:
            size = part.stat().st_size
        except OSError:
            size = -1
        now = time.monotonic()
        if size != last_size:
            last_size, last_change = size, now
        elif now - last_change > policy.lock_wait:
            raise FetchError(
                f"{item.label or item.url}: another build on this cache ({cache.root}) is downloading it but made "
                f"no progress for {policy.lock_wait:g} s. Wait for that build or stop it, then run again."
            )


class _Download:
    """One object into its partial file, with the running digest kept in step with the file's bytes."""

    def __init__(self, session: requests.Session, item: Item, part: Path, policy: RetryPolicy,
                 on_bytes: Callable[[int], None] | None, stats: Stats):
        self.session, self.item, self.part, self.policy = session, item, part, policy
        self.on_bytes, self.stats = on_bytes, stats
        self.hasher: Any = None
        self.hashed = 0  # bytes of part covered by hasher

    def _progress(self, n: int) -> None:
        if self.on_bytes and n:
            self.on_bytes(n)

    def _restart(self) -> None:
        """Forget the partial file (and the progress it counted)."""
        if self.part.exists():
            self._progress(-self.part.stat().st_size)
            self.part.unlink()
        self.hasher, self.hashed = hashlib.new(self.item.algo), 0

    def _sync_hash(self) -> int:
        """Make the digest cover exactly the partial's bytes: hash a resumed partial once; return its size."""
        have = self.part.stat().st_size if self.part.exists() else 0
        if self.hasher is None or self.hashed != have:
            self.hasher, self.hashed = hashlib.new(self.item.algo), 0
            if have:
                with open(self.part, "rb") as f:
                    for chunk in iter(lambda: f.read(CHUNK), b""):
                        self.hasher.update(chunk)
                        self.hashed += len(chunk)
        return have

    def _write(self, f: Any) -> Callable[[bytes], None]:
        def write(chunk: bytes) -> None:
            view = memoryview(chunk)
            while view:  # a raw file may take less than asked
                view = view[f.write(view) or 0:]
            self.hasher.update(chunk)
            self.hashed += len(chunk)
            self.stats.add(downloaded_bytes=len(chunk))
            self._progress(len(chunk))

        return write

    def attempt(self, _: int) -> None:
        item, name = self.item, self.item.label or self.item.url
        if item.url.startswith("file://"):
            self._copy_local()
        else:
            have = self._sync_hash()
            if item.size is not None and have > item.size:
                self._restart()
                have = 0
            if not (item.size is not None and have == item.size and have > 0):
                self._get(have, name)
        actual = self.hasher.hexdigest()
        if actual != item.digest:
            self._restart()
            why = f"expected {item.algo}:{item.digest}, got {item.algo}:{actual}"
            raise Transient(f"does not match its published checksum ({why})", corrupt=True, final=FetchError(
                f"{name}: the file at {item.url} does not match its published checksum ({why}). {_MISMATCH_ADVICE}"))

    def _get(self, have: int, name: str) -> None:
        item = self.item
        headers = dict(item.headers)
        if have:
            headers["Range"] = f"bytes={have}-"
        r = _open(self.session, item.url, headers, self.policy)
        with r:
            if r.status_code == 416 and have:
                self._restart()  # our partial is longer than the file (it changed upstream): start over
                raise Transient("the server refused to resume (HTTP 416); starting over")
            if r.status_code == 404:
                raise FetchError(
                    f"{name}: {item.url} does not exist upstream (HTTP 404). The repository metadata or lock "
                    "is out of date with the server: refresh the lock (bundler lock) or check the mirror."
                )
            if r.status_code in (401, 403):
                raise FetchError(f"{name}: {item.url} refused access (HTTP {r.status_code}). Check credentials.")
            if r.status_code not in (200, 206):
                raise FetchError(f"{name}: {item.url} answered HTTP {r.status_code}. Check the URL or the mirror.")
            if have and (r.status_code == 200 or not r.headers.get("Content-Range", "").startswith(f"bytes {have}-")):
                self._restart()  # the server ignored Range (or answered another one): take the body from zero
                if r.status_code == 206:
                    raise Transient("the server answered a different range than asked")
            with open(self.part, "ab", buffering=0) as f:  # unbuffered: what arrived survives a SIGKILL
                _pump(r, self._write(f), self.policy, item.url)

    def _copy_local(self) -> None:
        """file:// sources (local mirrors, mounted media): copied into the cache like a download."""
        src = Path(unquote(urlsplit(self.item.url).path))
        if not src.is_file():
            raise FetchError(f"{self.item.label or self.item.url}: {src} does not exist. Check the baseurl or path "
                             "in the manifest.")
        self._restart()
        with open(src, "rb") as fin, open(self.part, "wb") as fout:
            write = self._write(fout)
            for chunk in iter(lambda: fin.read(CHUNK), b""):
                write(chunk)


_MISMATCH_ADVICE = ("The upstream copy is corrupt or was replaced without updating its metadata (or a proxy alters "
                    "it); nothing was written to the bundle. Try another mirror, or report it to the repository's "
                    "maintainers.")


def fetch(
    session: requests.Session,
    item: Item,
    cache: Cache,
    *,
    on_bytes: Callable[[int], None] | None = None,
    stats: Stats | None = None,
    policy: RetryPolicy | None = None,
) -> Path:
    """Return the cached path of item, downloading it first if needed.

    Resumes a partial file left by an earlier interrupted run with an HTTP Range request, retries transient
    failures by the policy, and verifies the digest (computed while the bytes arrive) before the file enters
    the cache. A digest mismatch is retried once from zero, then reported.
    """
    stats = stats or Stats()
    policy = policy or RetryPolicy.from_env()
    hit = cache.get(item.algo, item.digest)
    if hit is None:
        fd = _acquire(cache, item, policy)
        if fd is not None:
            try:
                return _fetch_locked(session, item, cache, on_bytes, stats, policy)
            finally:
                cache.unlock(fd)
        hit = cache.get(item.algo, item.digest)
        if hit is None:  # evicted right after publication: try again as a writer
            return fetch(session, item, cache, on_bytes=on_bytes, stats=stats, policy=policy)
    stats.add(cache_hits=1)
    if on_bytes and item.size:
        on_bytes(item.size)
    return hit


def _fetch_locked(session: requests.Session, item: Item, cache: Cache, on_bytes: Callable[[int], None] | None,
                  stats: Stats, policy: RetryPolicy) -> Path:
    hit = cache.get(item.algo, item.digest)
    if hit is not None:  # another writer finished while we waited for the lock
        stats.add(cache_hits=1)
        if on_bytes and item.size:
            on_bytes(item.size)
        return hit
    part = cache.partial(item.algo, item.digest)
    if on_bytes and part.exists():
        on_bytes(part.stat().st_size)  # resumed bytes count as done
    dl = _Download(session, item, part, policy, on_bytes, stats)
    policy.call(dl.attempt, what=item.label or item.url, url=item.url, on_retry=lambda: stats.add(retries=1))
    stats.add(downloaded=1)
    return cache.commit(part, item.algo, item.digest)


def fetch_all(
    session: requests.Session,
    items: Iterable[Item],
    cache: Cache,
    *,
    workers: int = 8,
    progress: Callable[[int], None] | None = None,
    stats: Stats | None = None,
    policy: RetryPolicy | None = None,
) -> dict[Item, Path]:
    """Download items in parallel; on the first failure start nothing new and raise it once the others end.

    Workers are daemon threads and the wait is interruptible: Ctrl-C cancels every transfer (partials stay
    resumable) and returns within about a second even if a worker is stuck waiting on a server.
    """
    todo = list(dict.fromkeys(items))
    stats = stats or Stats()
    policy = policy or RetryPolicy.from_env()
    out: dict[Item, Path] = {}
    if not todo:
        return out
    work: queue.SimpleQueue[Item] = queue.SimpleQueue()
    for it in todo:
        work.put(it)
    errors: list[BaseException] = []
    stop = threading.Event()
    lock = threading.Lock()

    def worker() -> None:
        while not stop.is_set():
            try:
                it = work.get_nowait()
            except queue.Empty:
                return
            try:
                path = fetch(session, it, cache, on_bytes=progress, stats=stats, policy=policy)
            except BaseException as e:  # handed to the caller's thread
                with lock:
                    errors.append(e)
                stop.set()
                return
            with lock:
                out[it] = path

    threads = [threading.Thread(target=worker, name=f"fetch-{i}", daemon=True)
               for i in range(max(1, min(workers, len(todo))))]
    for t in threads:
        t.start()
    abandoned = False
    try:
        cancelled_at = None
        for t in threads:
            while t.is_alive() and not abandoned:
                t.join(0.1)
                if CANCEL.is_set():  # Ctrl-C seen by another thread (fetch_all may run in a pool worker)
                    cancelled_at = cancelled_at or time.monotonic()
                    # a worker still waiting for a server's first bytes is in no watchdog yet: after a second it is
                    # left behind (a daemon thread; the process is on its way out)
                    abandoned = time.monotonic() - cancelled_at > 1.0
    except KeyboardInterrupt:
        stop.set()
        cancel_downloads()
        deadline = time.monotonic() + 1.0
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        raise
    if abandoned:
        stop.set()
        raise Cancelled()
    if errors:
        real = [e for e in errors if not isinstance(e, Cancelled)]
        raise (real or errors)[0]
    return out


def store_stream(cache: Cache, src: IO[bytes], kind: str) -> tuple[Path, str, int]:
    """Copy a local stream (an archive member, a `docker save` layer) into the cache while hashing it; return
    (cached path, sha256 hex, size). The digest is known only at the end, so it goes through a private temp file."""
    h, size = hashlib.sha256(), 0
    tmp = cache.temp(kind)
    try:
        with open(tmp, "wb") as out:
            for chunk in iter(lambda: src.read(CHUNK), b""):
                h.update(chunk)
                out.write(chunk)
                size += len(chunk)
        return cache.commit(tmp, "sha256", h.hexdigest()), h.hexdigest(), size
    finally:
        tmp.unlink(missing_ok=True)


def fetch_unpinned(
    session: requests.Session,
    url: str,
    cache: Cache,
    *,
    label: str = "",
    policy: RetryPolicy | None = None,
) -> tuple[Path, str]:
    """Download a file whose checksum nobody publishes; return (cached path, sha256).

    Used only for defaults without a publisher checksum: the sha256 computed here is pinned in the lock,
    and every later `--locked` build verifies against it. Each writer uses its own temporary file.
    """
    policy = policy or RetryPolicy.from_env()
    name = label or url
    tmp = cache.temp("unpinned")
    try:
        def attempt(_: int) -> str:
            h = hashlib.sha256()
            with open(tmp, "wb") as fout:
                def write(chunk: bytes) -> None:
                    h.update(chunk)
                    fout.write(chunk)

                if url.startswith("file://"):
                    src = Path(unquote(urlsplit(url).path))
                    if not src.is_file():
                        raise FetchError(f"{name}: {src} does not exist.")
                    with open(src, "rb") as fin:
                        for chunk in iter(lambda: fin.read(CHUNK), b""):
                            write(chunk)
                else:
                    r = _open(session, url, {}, policy)
                    with r:
                        if r.status_code != 200:
                            raise FetchError(f"{name}: {url} answered HTTP {r.status_code}. Check the URL or mirror.")
                        _pump(r, write, policy, url)
            return h.hexdigest()

        digest = policy.call(attempt, what=name, url=url)
        return cache.commit(tmp, "sha256", digest), digest
    finally:
        if tmp.exists():
            os.unlink(tmp)
