"""One progress display for long work: a tqdm byte bar on a terminal, silence otherwise."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

from tqdm import tqdm


class ByteProgress:
    """Thread-safe byte counter feeding a tqdm bar; the callback is what downloaders receive."""

    def __init__(self, total: int, desc: str, enabled: bool = True):
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
