"""Fixtures of the fault-injection suite: fast retry limits, the fault proxy over the test upstream, a tally.

Every trial is counted (trials, passed, bad artifacts) and the totals are printed at the end of the run so the
figures can be quoted; a bad artifact is a cache blob that does not hash to its name.
"""

from __future__ import annotations

import hashlib
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bundler.fetch.download import reset_cancel
from tests.upstream.stack import Site, Stack

from .proxy import FaultProxy

# Low limits so every failure path runs in about a second (the defaults are minutes).
FAST = {
    "AIRGAP_BUNDLER_ATTEMPTS": "3",
    "AIRGAP_BUNDLER_BACKOFF": "0.05",
    "AIRGAP_BUNDLER_READ_TIMEOUT": "3",
    "AIRGAP_BUNDLER_CONNECT_TIMEOUT": "3",
    "AIRGAP_BUNDLER_MIN_SPEED": "2000",
    "AIRGAP_BUNDLER_SPEED_WINDOW": "0.4",
    "AIRGAP_BUNDLER_RETRY_AFTER_CAP": "0.3",
    "AIRGAP_BUNDLER_LOCK_WAIT": "20",
}


@dataclass
class Tally:
    trials: int = 0
    passed: int = 0
    bad_artifacts: int = 0
    notes: list[str] = field(default_factory=list)

    def record(self, ok: bool, bad: int = 0, note: str = "") -> None:
        self.trials += 1
        self.passed += bool(ok) and not bad
        self.bad_artifacts += bad
        if note and (not ok or bad):
            self.notes.append(note)


TALLY = Tally()


def bad_blobs(cache_root: Path) -> list[Path]:
    """Cache blobs whose content does not hash to their name."""
    bad = []
    for p in sorted((cache_root / "blobs").glob("*/*")):
        h = hashlib.new(p.parent.name)
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        if h.hexdigest() != p.name:
            bad.append(p)
    return bad


@pytest.fixture
def tally() -> Tally:
    return TALLY


@pytest.fixture(autouse=True)
def bounded() -> Iterator[None]:
    """No test of this suite may hang: SIGALRM fails it after 60 s."""
    def on_alarm(signum: int, frame: object) -> None:
        raise TimeoutError("fault-suite test still running after 60 s: a hang")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(60)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(autouse=True)
def fast_limits(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for k, v in FAST.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("DOCKER_CONFIG", "/nonexistent-docker-config")
    yield
    reset_cancel()


@pytest.fixture
def fproxy(stack: Stack) -> Iterator[FaultProxy]:
    """One fault proxy fronting the registry (/), the yum repos (/yum) and the download site (/site)."""
    assert stack.yum is not None and stack.site.server is not None
    px = FaultProxy({"": stack.registry.host, "/yum": f"127.0.0.1:{stack.yum.port}",
                     "/site": f"127.0.0.1:{stack.site.server.port}"})
    try:
        yield px
    finally:
        px.stop()


class _SiteVia:
    def __init__(self, url: str):
        self.url = url


def proxied_stack(stack: Stack, px: FaultProxy) -> Stack:
    """The same upstream, every URL (repos, registry, files) through the fault proxy."""
    repos = {name: url.replace(stack.yum.url, f"{px.url}/yum") for name, url in stack.repo_urls.items()}
    return Stack(repos, stack.registry, Site(stack.site.root, server=_SiteVia(f"{px.url}/site")),  # type: ignore[arg-type]
                 proxy=px, yum=stack.yum, images=stack.images)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY.trials:
        terminalreporter.write_line(
            f"fault suite: {TALLY.trials} trials, {TALLY.passed} passed, {TALLY.bad_artifacts} bad artifacts")
        for n in TALLY.notes:
            terminalreporter.write_line(f"  not passed: {n}")
