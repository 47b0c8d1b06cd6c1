"""A real HTTP server for test upstreams (yum repos, files), with fault injection.

`RepoHTTPServer(root)` serves the files under `root` on 127.0.0.1 (ephemeral port) from a
`ThreadingHTTPServer` running in a daemon thread. It speaks HTTP/1.1 with keep-alive and supports:

* single HTTP Range requests (`206 Partial Content`, `416` when unsatisfiable, `If-Range` with the
  ETag or Last-Modified it hands out), so resumed downloads can be tested;
* per-path request counting (`count()`, `counts()`, `log`), so a test can assert that a warm build
  downloads nothing;
* faults per URL path, consumed in order: `fail()` (status, default 503), `drop()` (close the
  connection without any response), `truncate()` (full Content-Length, partial body, then close),
  `corrupt()` (same length, bytes flipped), `slow()` (sleep before answering).

Only loopback is used; everything is stopped by `stop()` / the context manager.
"""

from __future__ import annotations

import email.utils
import mimetypes
import os
import posixpath
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

FaultKind = Literal["status", "drop", "truncate", "corrupt", "slow"]


@dataclass
class Fault:
    kind: FaultKind
    remaining: int | None  # None: forever
    status: int = 503
    keep_bytes: int | None = None  # truncate: body bytes sent before closing (None: half)
    offset: int | None = None  # corrupt: byte offset to flip (None: middle of the file)
    seconds: float = 0.0  # slow


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    status: int  # 0 when the connection was dropped without a response
    range: str | None
    bytes_sent: int
    fault: str | None


def _norm_path(path_or_url: str) -> str:
    """URL path of `path_or_url` (a full URL or a path), unquoted, always starting with '/'."""
    path = urlsplit(path_or_url).path if "://" in path_or_url else path_or_url.split("?", 1)[0]
    path = unquote(path)
    if not path.startswith("/"):
        path = "/" + path
    return posixpath.normpath(path) + ("/" if path.endswith("/") and path != "/" else "")


def _parse_range(header: str, size: int) -> tuple[int, int] | None | Literal["unsatisfiable"]:
    """Parse a single `bytes=` range. None means "ignore the header" (serve 200)."""
    header = header.strip()
    if not header.startswith("bytes=") or "," in header:
        return None
    spec = header[len("bytes="):].strip()
    first, sep, last = spec.partition("-")
    if not sep:
        return None
    try:
        if first == "":
            n = int(last)
            if n <= 0:
                return "unsatisfiable"
            return (max(0, size - n), size - 1)
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start < 0:
        return None
    if start >= size:
        return "unsatisfiable"
    if end < start:
        return None
    return (start, min(end, size - 1))


class RepoHTTPServer:
    """Serve `root` over HTTP on 127.0.0.1 in a background thread."""

    def __init__(self, root: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 0) -> None:
        self.root = Path(root).resolve()
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._faults: dict[str, list[Fault]] = {}
        self._log: list[RequestRecord] = []
        self._inflight = 0
        self._idle = threading.Condition(self._lock)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> RepoHTTPServer:
        if self._httpd is not None:
            return self
        handler = _make_handler(self)
        httpd = ThreadingHTTPServer((self._host, self._port), handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"RepoHTTPServer:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> RepoHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL without trailing slash, e.g. http://127.0.0.1:40123."""
        return f"http://{self._host}:{self.port}"

    def url_for(self, relpath: str) -> str:
        return f"{self.url}/{relpath.lstrip('/')}"

    def repo_url(self, name: str) -> str:
        """URL of the repo directory `name` (with trailing slash)."""
        return f"{self.url}/{name.strip('/')}/"

    # ------------------------------------------------------------------ accounting
    def _settle(self, timeout: float = 2.0) -> None:
        """Wait (bounded) until requests being answered are recorded: a client can finish reading a
        response before the handler thread logs it."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._inflight and time.monotonic() < deadline:
                self._idle.wait(max(0.0, deadline - time.monotonic()))

    def _begin(self) -> None:
        with self._lock:
            self._inflight += 1

    def _end(self) -> None:
        with self._idle:
            self._inflight -= 1
            self._idle.notify_all()

    @property
    def log(self) -> list[RequestRecord]:
        """Every request answered so far (settled first, so a finished client's request is in it)."""
        self._settle()
        return self._log

    def count(self, path_or_prefix: str = "/", *, prefix: bool = True, method: str | None = None) -> int:
        """Requests whose path equals (prefix=False) or starts with `path_or_prefix`."""
        want = _norm_path(path_or_prefix)
        self._settle()
        with self._lock:
            recs = list(self._log)
        n = 0
        for r in recs:
            if method is not None and r.method != method:
                continue
            if r.path == want or (prefix and (want == "/" or r.path.startswith(want.rstrip("/") + "/"))):
                n += 1
        return n

    def counts(self) -> dict[str, int]:
        """Requests per path (all methods, all outcomes)."""
        self._settle()
        with self._lock:
            return dict(self._counts)

    def downloads(self, prefix: str = "/") -> list[str]:
        """Paths of successful GETs (200/206) under `prefix`, in order."""
        want = _norm_path(prefix)
        self._settle()
        with self._lock:
            recs = list(self._log)
        return [r.path for r in recs if r.method == "GET" and r.status in (200, 206)
                and (want == "/" or r.path == want or r.path.startswith(want.rstrip("/") + "/"))]

    def reset_counts(self) -> None:
        self._settle()  # a request still being answered must not be logged after the reset
        with self._lock:
            self._counts.clear()
            self._log.clear()

    def reset(self) -> None:
        """Forget counts, log and all pending faults."""
        self._settle()  # a request still being answered must not be logged after the reset
        with self._lock:
            self._counts.clear()
            self._log.clear()
            self._faults.clear()

    # ------------------------------------------------------------------ faults
    def _add_fault(self, path: str, fault: Fault) -> None:
        with self._lock:
            self._faults.setdefault(_norm_path(path), []).append(fault)

    def fail(self, path: str, times: int | None = 1, status: int = 503) -> None:
        """Answer the next `times` requests for `path` with `status` (None: forever)."""
        self._add_fault(path, Fault("status", times, status=status))

    def drop(self, path: str, times: int | None = 1) -> None:
        """Close the connection without answering the next `times` requests for `path`."""
        self._add_fault(path, Fault("drop", times))

    def truncate(self, path: str, times: int | None = 1, keep_bytes: int | None = None) -> None:
        """Send the full Content-Length but only `keep_bytes` of the body (default half), then close."""
        self._add_fault(path, Fault("truncate", times, keep_bytes=keep_bytes))

    def corrupt(self, path: str, times: int | None = None, offset: int | None = None) -> None:
        """Serve `path` with one byte flipped (same length); forever by default."""
        self._add_fault(path, Fault("corrupt", times, offset=offset))

    def slow(self, path: str, seconds: float, times: int | None = 1) -> None:
        """Sleep `seconds` before answering the next `times` requests for `path`."""
        self._add_fault(path, Fault("slow", times, seconds=seconds))

    def clear_faults(self, path: str | None = None) -> None:
        with self._lock:
            if path is None:
                self._faults.clear()
            else:
                self._faults.pop(_norm_path(path), None)

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get(path)
            if not queue:
                return None
            fault = queue[0]
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    queue.pop(0)
            return fault

    def _record(self, rec: RequestRecord) -> None:
        with self._lock:
            self._counts[rec.path] += 1
            self._log.append(rec)


def _make_handler(server: RepoHTTPServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "airgap-test-upstream/1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
            pass

        def do_HEAD(self) -> None:
            server._begin()
            try:
                self._serve(head=True)
            finally:
                server._end()

        def do_GET(self) -> None:
            server._begin()
            try:
                self._serve(head=False)
            finally:
                server._end()

        def _finish(self, status: int, rng: str | None, sent: int, fault: str | None) -> None:
            server._record(RequestRecord(self.command, self._path, status, rng, sent, fault))

        def _simple(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> int:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return len(body)

        def _serve(self, head: bool) -> None:
            self._path = _norm_path(self.path)
            rng = self.headers.get("Range")
            fault = server._take_fault(self._path)
            fault_name = fault.kind if fault else None
            if fault and fault.kind == "slow":
                time.sleep(fault.seconds)
            if fault and fault.kind == "status":
                sent = self._simple(fault.status, f"injected {fault.status}\n".encode(), {"Retry-After": "0"})
                self._finish(fault.status, rng, sent, fault_name)
                return
            if fault and fault.kind == "drop":
                self.close_connection = True
                self._finish(0, rng, 0, fault_name)
                return

            rel = self._path.lstrip("/")
            target = (server.root / rel).resolve()
            if (server.root not in target.parents and target != server.root) or not target.is_file():
                sent = self._simple(404, b"not found\n")
                self._finish(404, rng, sent, fault_name)
                return
            data = target.read_bytes()
            st = target.stat()
            size = len(data)
            if fault and fault.kind == "corrupt" and size:
                off = size // 2 if fault.offset is None else min(max(fault.offset, 0), size - 1)
                data = data[:off] + bytes([data[off] ^ 0xFF]) + data[off + 1:]
            etag = f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
            last_mod = email.utils.formatdate(st.st_mtime, usegmt=True)
            ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            if target.name.endswith(".rpm"):
                ctype = "application/x-rpm"

            status, start, end = 200, 0, size - 1
            if rng is not None:
                if_range = self.headers.get("If-Range")
                if if_range is None or if_range.strip() in (etag, last_mod):
                    parsed = _parse_range(rng, size)
                    if parsed == "unsatisfiable":
                        sent = self._simple(416, b"", {"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"})
                        self._finish(416, rng, sent, fault_name)
                        return
                    if parsed is not None:
                        status, (start, end) = 206, parsed
            body = data[start:end + 1] if size else b""

            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", last_mod)
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            if fault and fault.kind == "truncate":
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if head:
                self._finish(status, rng, 0, fault_name)
                return
            if fault and fault.kind == "truncate":
                keep = len(body) // 2 if fault.keep_bytes is None else min(fault.keep_bytes, len(body))
                body = body[:keep]
            try:
                self.wfile.write(body)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass
            self._finish(status, rng, len(body), fault_name)

    return Handler


__all__ = ["Fault", "RepoHTTPServer", "RequestRecord"]
