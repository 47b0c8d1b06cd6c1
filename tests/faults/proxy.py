"""A fault-injecting HTTP proxy on 127.0.0.1 in front of the test upstreams (yum repos, download site, registry).

Same interface idea as tests.images.helpers.Proxy (`decide(method, path, n)` picks an action, n counts requests
per (method, path)), on the same `_Server`, but with the faults real networks have and the body streamed the
way a mirror would send it:

    forward              pass the answer through
    status:503           answer that status (also 500, 502, 504...) with no Retry-After
    429:S                429 Too Many Requests with Retry-After: S
    reset                full Content-Length, half the body, then a TCP reset (RST)
    truncate             full Content-Length, half the body, then a clean close (FIN)
    flip                 the whole body with one byte flipped in the middle
    stall                headers and half the body, then nothing (until the client gives up or the proxy stops)
    trickle:R            the body at R bytes per second
    refuse               close the connection without any answer

`routes` maps a path prefix to an upstream host:port (the prefix is stripped before forwarding), so one proxy
can front the yum server, the download site and the registry at once. Only loopback is contacted.
"""

from __future__ import annotations

import http.client
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from tests.images.helpers import _HOP, _Server

Decide = Callable[[str, str, int], str]


def on_paths(pattern: str, plan: dict[int, str] | str, default: str = "forward") -> Decide:
    """Fault the requests whose path matches pattern: plan maps the n-th request to an action (or one action for
    every request)."""
    rx = re.compile(pattern)

    def decide(method: str, path: str, n: int) -> str:
        if method not in ("GET", "HEAD") or not rx.search(path):
            return default
        return plan if isinstance(plan, str) else plan.get(n, default)

    return decide


class FaultProxy(_Server):
    """HTTP/1.1 proxy with per-path, per-n-th-request faults; `injected` lists every (path, action) applied."""

    def __init__(self, routes: dict[str, str] | str, decide: Decide = lambda m, p, n: "forward",
                 stall_limit: float = 30.0):
        self.routes = {"": routes} if isinstance(routes, str) else dict(routes)
        self.decide = decide
        self.stall_limit = stall_limit
        self.counts: dict[tuple[str, str], int] = {}
        self.injected: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        super().__init__(_FaultHandler)

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def route(self, path: str) -> tuple[str, str]:
        """(upstream host, path there) by the longest matching prefix."""
        best = max((p for p in self.routes if path.startswith(p)), key=len)
        rest = path[len(best):]
        return self.routes[best], rest if rest.startswith("/") else "/" + rest

    def set(self, decide: Decide) -> None:
        with self.lock:
            self.decide = decide
            self.counts.clear()

    def stop(self) -> None:
        self.stopping.set()
        super().stop()


class _FaultHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a: object) -> None:  # quiet
        pass

    def _handle(self) -> None:
        px: FaultProxy = self.server.owner  # type: ignore[attr-defined]
        path = urlsplit(self.path).path
        with px.lock:
            key = (self.command, path)
            px.counts[key] = n = px.counts.get(key, 0) + 1
            decide = px.decide
        action = decide(self.command, path, n)
        if action != "forward":
            with px.lock:
                px.injected.append((path, action))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if action == "refuse":
            self.close_connection = True
            self._rst()
            return
        if action.startswith("status:") or action.startswith("429:"):
            status = int(action.split(":")[1]) if action.startswith("status:") else 429
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", action.split(":")[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        upstream, upath = px.route(self.path)
        conn = http.client.HTTPConnection(upstream, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP and k.lower() != "host"}
        headers["Host"] = upstream
        try:
            conn.request(self.command, upath, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if action == "flip" and len(data) > 1:
            mid = len(data) // 2
            data = data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1:]
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in _HOP and k.lower() != "content-length":
                if k.lower() == "location" and v.startswith(f"http://{upstream}"):
                    v = px.url + v[len(f"http://{upstream}"):]
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command == "HEAD":
            return
        half = data[: len(data) // 2]
        try:
            if action == "reset":
                self.wfile.write(half)
                self.wfile.flush()
                self.close_connection = True
                self._rst()
            elif action == "truncate":
                self.wfile.write(half)
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            elif action == "stall":
                self.wfile.write(half)
                self.wfile.flush()
                self.close_connection = True
                self._wait_gone(px, px.stall_limit)
            elif action.startswith("trickle:"):
                rate = max(1, int(action.split(":")[1]))
                step = max(1, rate // 10)
                for i in range(0, len(data), step):
                    if px.stopping.is_set():
                        break
                    self.wfile.write(data[i:i + step])
                    self.wfile.flush()
                    time.sleep(step / rate)
            else:
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    def _rst(self) -> None:
        """Close with a TCP reset (SO_LINGER 0), as a crashing proxy or a middlebox does."""
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def _wait_gone(self, px: FaultProxy, limit: float) -> None:
        """Hold the connection open, sending nothing, until the client hangs up, the proxy stops or limit."""
        deadline = time.monotonic() + limit
        self.connection.settimeout(0.1)
        while time.monotonic() < deadline and not px.stopping.is_set():
            try:
                if self.connection.recv(1, socket.MSG_PEEK) == b"":
                    return
            except socket.timeout:
                continue
            except OSError:
                return
            time.sleep(0.1)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle
