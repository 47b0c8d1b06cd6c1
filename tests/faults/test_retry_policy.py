"""RetryPolicy in isolation: backoff bounds, Retry-After honoured but capped, corrupt bodies retried once."""

from __future__ import annotations

import email.utils
import time

import pytest

from bundler.errors import FetchError
from bundler.fetch.retry import RetryPolicy, Transient, parse_retry_after


def test_backoff_is_jittered_exponential_and_capped():
    p = RetryPolicy(backoff=0.5, max_backoff=4)
    for attempt, base in ((1, 0.5), (2, 1.0), (3, 2.0), (6, 4.0)):
        d = [p.delay(attempt) for _ in range(50)]
        assert all(0.5 * base <= x <= 1.5 * base for x in d) and len(set(d)) > 1


def test_retry_after_is_honoured_up_to_the_cap():
    p = RetryPolicy(retry_after_cap=60)
    assert p.delay(1, 7) == 7 and p.delay(1, 3600) == 60
    assert parse_retry_after("120") == 120 and parse_retry_after("soon") is None and parse_retry_after(None) is None
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= parse_retry_after(when) <= 31


def test_attempts_are_bounded_and_the_error_names_artifact_url_and_cause():
    calls = []

    def flaky(attempt: int) -> None:
        calls.append(attempt)
        raise Transient("connection reset by the server or a proxy", retry_after=0)

    with pytest.raises(FetchError) as e:
        RetryPolicy(attempts=3).call(flaky, what="pkg-1.0.rpm (repo 'x')", url="http://mirror.example/pkg-1.0.rpm")
    assert calls == [1, 2, 3]
    msg = str(e.value)
    assert msg.startswith("pkg-1.0.rpm (repo 'x'): http://mirror.example/pkg-1.0.rpm failed after 3 attempts")
    assert "connection reset" in msg and "\n" not in msg


def test_a_corrupt_body_is_retried_once_then_reported():
    calls = []

    def corrupt(attempt: int) -> None:
        calls.append(attempt)
        raise Transient("does not match", corrupt=True, final=FetchError("x: the file does not match its digest"))

    with pytest.raises(FetchError, match="does not match its digest"):
        RetryPolicy(attempts=5, backoff=0).call(corrupt, what="x", url="u")
    assert calls == [1, 2]
    assert RetryPolicy(backoff=0).call(lambda a: a if a == 2 else (_ for _ in ()).throw(
        Transient("bad", corrupt=True)), what="x", url="u") == 2


def test_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("AIRGAP_BUNDLER_MIN_SPEED", "512")
    monkeypatch.setenv("AIRGAP_BUNDLER_ATTEMPTS", "2")
    p = RetryPolicy.from_env()
    assert (p.min_speed, p.attempts) == (512, 2)
    monkeypatch.setenv("AIRGAP_BUNDLER_DEADLINE", "ten")
    with pytest.raises(FetchError, match="AIRGAP_BUNDLER_DEADLINE='ten' is not a number"):
        RetryPolicy.from_env()
