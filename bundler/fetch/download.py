"""Verified, resumable, retried, parallel downloads into the content-addressed cache."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import requests
import urllib3

from ..errors import FetchError
from .cache import Cache

CHUNK = 1 << 20
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


class _Retryable(Exception):
    """A transient failure: try again after a backoff."""


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


def _hash_file(path: Path, algo: str) -> hashlib._Hash:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h


def fetch(
    session: requests.Session,
    item: Item,
    cache: Cache,
    *,
    attempts: int = 5,
    on_bytes: Callable[[int], None] | None = None,
    stats: Stats | None = None,
    backoff: float = 0.5,
    timeout: float = 60.0,
) -> Path:
    """Return the cached path of item, downloading it first if needed.

    Resumes a partial file left by an earlier interrupted run with an HTTP Range request, retries transient
    failures (connection resets, 429/5xx) with jittered exponential backoff, and verifies the digest before
    the file enters the cache. A digest mismatch is retried once from zero (the partial may be from a
    different upstream state), then reported.
    """
    stats = stats or Stats()
    hit = cache.get(item.algo, item.digest)
    if hit is not None:
        stats.add(cache_hits=1)
        if on_bytes and item.size:
            on_bytes(item.size)
        return hit
    part = cache.partial(item.algo, item.digest)
    name = item.label or item.url
    if on_bytes and part.exists():
        on_bytes(part.stat().st_size)  # resumed bytes count as done
    mismatches = 0
    last_error = ""
    for attempt in range(1, attempts + 1):
        try:
            _stream(session, item, part, on_bytes, stats, timeout)
        except _Retryable as e:
            last_error = str(e)
            stats.add(retries=1)
            time.sleep(backoff * (2 ** (attempt - 1)) * (0.5 + random.random()))
            continue
        actual = _hash_file(part, item.algo).hexdigest()
        if actual == item.digest:
            stats.add(downloaded=1)
            return cache.commit(part, item.algo, item.digest)
        if on_bytes:
            on_bytes(-part.stat().st_size)
        part.unlink(missing_ok=True)
        mismatches += 1
        if mismatches >= 2:
            raise FetchError(
                f"{name}: the file at {item.url} does not match its published checksum "
                f"(expected {item.algo}:{item.digest}, got {item.algo}:{actual}). The upstream copy is corrupt "
                "or was replaced without updating its metadata; nothing was written to the bundle. Try another "
                "mirror, or report it to the repository's maintainers."
            )
        last_error = "checksum mismatch"
    raise FetchError(
        f"{name}: download of {item.url} failed after {attempts} attempts ({last_error}). Check the network "
        "or the mirror, then run the same command again: finished downloads are cached and partial ones resume."
    )


def _stream(
    session: requests.Session,
    item: Item,
    part: Path,
    on_bytes: Callable[[int], None] | None,
    stats: Stats,
    timeout: float,
) -> None:
    """Append the missing bytes of item to part (Range from its current size)."""
    if item.url.startswith("file://"):
        _copy_local(item, part, on_bytes)
        return
    have = part.stat().st_size if part.exists() else 0
    if item.size is not None and have > item.size:
        part.unlink()
        have = 0
    if item.size is not None and have == item.size and have > 0:
        return
    headers = dict(item.headers)
    if have:
        headers["Range"] = f"bytes={have}-"
    name = item.label or item.url
    try:
        with session.get(item.url, headers=headers, stream=True, timeout=timeout) as r:
            if r.status_code in RETRYABLE_STATUS:
                raise _Retryable(f"HTTP {r.status_code} from {item.url}")
            if r.status_code == 416 and have:
                if on_bytes:
                    on_bytes(-have)
                part.unlink()  # our partial is longer than the file: start over
                raise _Retryable("range not satisfiable")
            if r.status_code == 404:
                raise FetchError(
                    f"{name}: {item.url} does not exist upstream (HTTP 404). The repository metadata or lock "
                    "is out of date with the server: refresh the lock (bundler lock) or check the mirror."
                )
            if r.status_code in (401, 403):
                raise FetchError(f"{name}: {item.url} refused access (HTTP {r.status_code}). Check credentials.")
            if r.status_code not in (200, 206):
                raise FetchError(f"{name}: {item.url} answered HTTP {r.status_code}.")
            mode = "ab" if (have and r.status_code == 206) else "wb"
            if mode == "wb" and have and on_bytes:
                on_bytes(-have)  # server ignored Range: the progress restarts from zero for this file
            with open(part, mode) as f:
                # read1: keep every byte that arrived even if the connection dies mid-chunk (resume from there)
                while chunk := r.raw.read1(CHUNK, decode_content=True):
                    f.write(chunk)
                    stats.add(downloaded_bytes=len(chunk))
                    if on_bytes:
                        on_bytes(len(chunk))
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
            urllib3.exceptions.HTTPError) as e:
        raise _Retryable(f"{type(e).__name__} from {item.url}") from None


def _copy_local(item: Item, part: Path, on_bytes: Callable[[int], None] | None) -> None:
    """file:// sources (local mirrors, mounted media): copied into the cache like a download."""
    src = Path(unquote(urlsplit(item.url).path))
    if not src.is_file():
        raise FetchError(f"{item.label or item.url}: {src} does not exist. Check the baseurl or path in the manifest.")
    if on_bytes and part.exists():
        on_bytes(-part.stat().st_size)
    with open(src, "rb") as fin, open(part, "wb") as fout:
        for chunk in iter(lambda: fin.read(CHUNK), b""):
            fout.write(chunk)
            if on_bytes:
                on_bytes(len(chunk))


def fetch_all(
    session: requests.Session,
    items: Iterable[Item],
    cache: Cache,
    *,
    workers: int = 8,
    progress: Callable[[int], None] | None = None,
    stats: Stats | None = None,
) -> dict[Item, Path]:
    """Download items in parallel; on the first failure cancel the rest and raise it."""
    todo = list(dict.fromkeys(items))
    stats = stats or Stats()
    out: dict[Item, Path] = {}
    if not todo:
        return out
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo)))) as pool:
        futures = {pool.submit(fetch, session, it, cache, on_bytes=progress, stats=stats): it for it in todo}
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for f in pending:
            f.cancel()
        errors = [f.exception() for f in done if f.exception() is not None]
        if errors:
            for f in pending:
                if not f.cancelled():
                    try:
                        f.result()
                    except Exception:  # noqa: BLE001 - already failing; the first error is reported
                        pass
            raise errors[0]
        for f, it in futures.items():
            out[it] = f.result()
    return out


def fetch_unpinned(
    session: requests.Session,
    url: str,
    cache: Cache,
    *,
    label: str = "",
    attempts: int = 5,
    timeout: float = 60.0,
) -> tuple[Path, str]:
    """Download a file whose checksum nobody publishes; return (cached path, sha256).

    Used only for defaults without a publisher checksum: the sha256 computed here is pinned in the lock,
    and every later `--locked` build verifies against it.
    """
    name = label or url
    tmp = cache.partial("sha256", hashlib.sha256(url.encode()).hexdigest())
    last = ""
    for attempt in range(1, attempts + 1):
        h = hashlib.sha256()
        try:
            if url.startswith("file://"):
                src = Path(unquote(urlsplit(url).path))
                if not src.is_file():
                    raise FetchError(f"{name}: {src} does not exist.")
                with open(src, "rb") as fin, open(tmp, "wb") as fout:
                    for chunk in iter(lambda: fin.read(CHUNK), b""):
                        h.update(chunk)
                        fout.write(chunk)
            else:
                with session.get(url, stream=True, timeout=timeout) as r:
                    if r.status_code in RETRYABLE_STATUS:
                        raise _Retryable(f"HTTP {r.status_code}")
                    if r.status_code != 200:
                        raise FetchError(f"{name}: {url} answered HTTP {r.status_code}. Check the URL or mirror.")
                    with open(tmp, "wb") as fout:
                        while chunk := r.raw.read1(CHUNK, decode_content=True):
                            h.update(chunk)
                            fout.write(chunk)
        except (_Retryable, requests.ConnectionError, requests.Timeout, urllib3.exceptions.HTTPError) as e:
            last = str(e) or type(e).__name__
            time.sleep(0.5 * (2 ** (attempt - 1)))
            continue
        digest = h.hexdigest()
        return cache.commit(tmp, "sha256", digest), digest
    raise FetchError(f"{name}: download of {url} failed after {attempts} attempts ({last}). Retry later.")
