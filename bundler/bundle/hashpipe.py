"""Running checksums on a helper thread, in order, a few chunks behind the thread that reads and writes.

hashlib and zlib.crc32 release the GIL on large buffers, so while the writer thread copies bytes into the
kernel, a helper folds the previous chunks into the digests: on 2 cores the write costs the slower of the
two, not their sum. Chunks must be immutable (bytes, or views of bytes): they are read after submit returns.
"""

from __future__ import annotations

import mmap
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

#: Chunks in flight per pipe: enough to ride out a slow write, small enough to bound memory (~1 MiB each).
DEPTH = 3


class Behind:
    """Calls fn(chunk) for each submitted chunk, in submission order, on one worker thread (or inline).

    The pool must have a single worker: FIFO execution is what keeps a digest's updates in order.
    """

    def __init__(self, fn: Callable[[Any], object], pool: ThreadPoolExecutor | None, min_size: int = 1 << 16):
        self.fn, self.pool, self.min_size = fn, pool, min_size
        self._q: deque[Future[object]] = deque()

    def submit(self, item: Any, size: int) -> None:
        """Fold in item (of size bytes): on the worker, or inline when it is small and nothing waits ahead."""
        q = self._q
        while q and q[0].done():
            q.popleft().result()
        if self.pool is None or size < self.min_size and not q:
            self.fn(item)  # a hand-off costs more than hashing a few KiB; order is kept (nothing is queued)
            return
        if len(q) >= DEPTH:
            q.popleft().result()
        q.append(self.pool.submit(self.fn, item))

    def drain(self) -> None:
        """Wait until every submitted chunk is folded in (re-raising a worker's error)."""
        while self._q:
            self._q.popleft().result()


def update_all(h: Any) -> Callable[[list[memoryview]], None]:
    """One job for a whole writev's parts (a 5-byte block header is not worth a thread hand-off of its own)."""

    def fold(parts: list[memoryview]) -> None:
        for p in parts:
            h.update(p)

    return fold


def frozen(b: bytes | bytearray | memoryview) -> memoryview:
    """A byte view that nobody can change after the call: views of bytes or of a read-only mapping as they are,
    anything else copied."""
    v = memoryview(b).cast("B")
    return v if v.readonly and isinstance(v.obj, (bytes, mmap.mmap)) else memoryview(bytes(v))


class Crc32:
    """zlib.crc32 as an object with update(), so it can ride a Behind like a hashlib digest."""

    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes | memoryview) -> None:
        self.value = zlib.crc32(data, self.value)
