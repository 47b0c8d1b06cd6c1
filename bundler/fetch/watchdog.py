"""Per-object transfer limits: a mirror that trickles or stalls, or a Ctrl-C, ends a transfer within a tick.

A read timeout alone never fires on a server sending one byte a second. One daemon thread looks at every
transfer in flight a few times a second; when one is below the minimum throughput over its window, past
its deadline, or cancelled, it records why and shuts the socket down, so the blocked read returns at once.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from .retry import CANCEL, RetryPolicy

TICK = 0.2


class Transfer:
    """One body being read; the reader adds to `bytes`, the watchdog sets `reason` and aborts the socket."""

    def __init__(self, response: Any, policy: RetryPolicy):
        self.response, self.policy = response, policy
        self.started = self.mark_time = time.monotonic()
        self.bytes = self.mark_bytes = 0
        self.reason = ""

    def check(self, now: float) -> None:
        p = self.policy
        if self.reason:
            return
        if CANCEL.is_set():
            self.abort("cancelled")
        elif p.deadline and now - self.started > p.deadline:
            self.abort(f"took longer than the {p.deadline:g} s per-object deadline")
        elif p.min_speed and p.window and now - self.mark_time >= p.window:
            speed = (self.bytes - self.mark_bytes) / (now - self.mark_time)
            if speed < p.min_speed:
                self.abort(f"too slow: {speed:.0f} bytes/s over the last {p.window:g} s, below the minimum of "
                           f"{p.min_speed:.0f} bytes/s (the mirror trickles or stalled)")
            else:
                self.mark_time, self.mark_bytes = now, self.bytes

    def abort(self, reason: str) -> None:
        self.reason = reason
        sock = _socket_of(self.response)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _socket_of(response: Any) -> socket.socket | None:
    """The socket under a requests/urllib3 response (None if it is already released)."""
    raw = getattr(response, "raw", response)
    conn = getattr(raw, "_connection", None) or getattr(raw, "connection", None)
    sock = getattr(conn, "sock", None)
    if isinstance(sock, socket.socket):
        return sock
    fp = getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None)
    sock = getattr(fp, "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


class Watchdog:
    """The set of transfers in flight and the one thread that checks them."""

    def __init__(self) -> None:
        self._live: set[Transfer] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, t: Transfer) -> None:
        with self._lock:
            self._live.add(t)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="fetch-watchdog", daemon=True)
                self._thread.start()

    def remove(self, t: Transfer) -> None:
        with self._lock:
            self._live.discard(t)

    def abort_all(self, reason: str = "cancelled") -> None:
        with self._lock:
            live = list(self._live)
        for t in live:
            t.abort(reason)

    def _run(self) -> None:
        while True:
            if CANCEL.wait(TICK):
                self.abort_all()
                time.sleep(TICK)
            with self._lock:
                live = list(self._live)
                if not live:
                    self._thread = None
                    return
            now = time.monotonic()
            for t in live:
                t.check(now)


WATCHDOG = Watchdog()
