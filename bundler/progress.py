"""Progress displays for long work: a tqdm byte bar on a terminal (silence otherwise), and named stages."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO


class ByteProgress:
    """Thread-safe byte counter feeding a tqdm bar; the callback is what downloaders receive."""

    def __init__(self, total: int, desc: str, enabled: bool = True):
        from tqdm import tqdm  # here: commands that show no bar (plan, --help) do not load it

        self._lock = threading.Lock()
        self.bar = tqdm(
            total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, dynamic_ncols=True,
            disable=not enabled or not sys.stderr.isatty(), leave=False,
        )

    def __call__(self, n: int) -> None:
        with self._lock:
            self.bar.update(n)

    @property
    def callback(self) -> Callable[[int], None]:
        return self

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> ByteProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Stages:
    """Names each stage of a long command on stderr while it runs, and records how long each took.

    A stage that reads repo metadata from a slow upstream can take a minute: on a terminal its line shows the
    elapsed time, ticking; in a log there is one line when it starts and one when it ends. Disabled: only timing.
    """

    def __init__(self, enabled: bool = True, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and self.stream.isatty()
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, key: str, text: str) -> Iterator[None]:
        """Time the block under key (times of one key add up) and show text while it runs."""
        start = time.monotonic()
        stop = threading.Event()
        ticker = None
        if self.tty:
            ticker = threading.Thread(target=self._tick, args=(text, start, stop), daemon=True)
            ticker.start()
        elif self.enabled:
            print(f"{text} ...", file=self.stream, flush=True)
        ok = False
        try:
            yield
            ok = True
        finally:
            took = time.monotonic() - start
            self.seconds[key] = self.seconds.get(key, 0.0) + took
            stop.set()
            if ticker:
                ticker.join()
            if self.enabled:
                end = "\r\x1b[K" if self.tty else ""
                print(f"{end}{text}: {'done' if ok else 'stopped'} in {took:.1f} s", file=self.stream, flush=True)

    def _tick(self, text: str, start: float, stop: threading.Event) -> None:
        while not stop.wait(0.5):
            print(f"\r\x1b[K{text} ... {time.monotonic() - start:.0f} s", end="", file=self.stream, flush=True)
