"""rpm's version order (rpmvercmp: numeric/alpha segments, '~' before the end, '^' after it), taken from libsolv,
the solver the builder already uses, rather than written again."""

from __future__ import annotations

import threading

import solv


class _Comparer:
    """Two scratch solvables in a private rpm-type pool: set their evr, ask libsolv which is newer."""

    def __init__(self) -> None:
        self.pool = solv.Pool()
        self.pool.setdisttype(solv.Pool.DISTTYPE_RPM)
        repo = self.pool.add_repo("evrcmp")
        self.a, self.b = repo.add_solvable(), repo.add_solvable()
        self.lock = threading.Lock()

    def cmp(self, a: str, b: str) -> int:
        with self.lock:
            self.a.evr, self.b.evr = a, b
            r = self.a.evrcmp(self.b)
        return (r > 0) - (r < 0)


_COMPARER = _Comparer()


def rpmvercmp(a: str, b: str) -> int:
    """-1, 0 or 1, as rpm orders two version (or release) strings."""
    return 0 if a == b else _COMPARER.cmp(a, b)
