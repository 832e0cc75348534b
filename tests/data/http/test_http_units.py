"""The small parts on their own: rate limit parsing and pacing, breaker states, JSON paths, flattening."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from bubbles import ConfigError
from bubbles.data.http import Breaker, CircuitBreaker, RateLimit, RateLimiter
from bubbles.data.http.flatten import find_path, flatten_record


@pytest.mark.parametrize(
    ("spec", "per_second"),
    [("10/s", 10.0), ("600/min", 10.0), ("7200 / hour", 2.0), ("5/second", 5.0), ("120/minutes", 2.0), (4, 4.0), (0.5, 0.5)],
)
def test_rate_limit_specs(spec, per_second: float) -> None:
    assert RateLimit.parse(spec).per_second == pytest.approx(per_second)


@pytest.mark.parametrize("spec", ["fast", "10/fortnight", "0/s", "-1"])
def test_bad_rate_limit_specs(spec) -> None:
    with pytest.raises(ConfigError):
        RateLimit.parse(spec)


def test_limiter_paces_and_bursts() -> None:
    even = RateLimiter(100.0)
    waits = [even.reserve() for _ in range(5)]
    assert waits[0] == pytest.approx(0, abs=0.002)
    assert waits[4] == pytest.approx(0.04, abs=0.005)
    bursty = RateLimiter(100.0, burst=3)
    waits = [bursty.reserve() for _ in range(5)]
    assert max(waits[:3]) < 0.002 and waits[3] == pytest.approx(0.01, abs=0.005)


def test_limiter_defer_holds_every_slot() -> None:
    limiter = RateLimiter(1000.0)
    limiter.defer(0.3)
    assert limiter.reserve() == pytest.approx(0.3, abs=0.02)


def test_breaker_state_machine() -> None:
    breaker = CircuitBreaker(failures=2, cooldown=0.1, name="http://example")
    assert breaker.allow() is None and not breaker.failure()
    breaker.success()  # resets the count: failures must be consecutive
    assert not breaker.failure() and breaker.failure()  # the second in a row trips it
    assert breaker.state == "open" and breaker.trips == 1
    assert breaker.allow() == pytest.approx(0.1, abs=0.05)
    time.sleep(0.12)
    assert breaker.state == "half-open"
    assert breaker.allow() is None  # the probe
    assert breaker.allow() is not None  # only one probe at a time
    assert breaker.failure() and breaker.state == "open" and breaker.trips == 2
    time.sleep(0.12)
    assert breaker.allow() is None
    breaker.success()
    assert breaker.state == "closed" and breaker.allow() is None


def test_breaker_settings_are_checked() -> None:
    with pytest.raises(ConfigError):
        Breaker(failures=0)


def test_find_path_and_flatten() -> None:
    body = {"data": {"rows": [{"a": 1}]}, "list": [[0, {"x": 2}]]}
    assert find_path(body, "$.data.rows") == [{"a": 1}]
    assert find_path(body, "list.0.1.x") == 2
    assert find_path(body, None) is body and find_path(body, "$") is body
    assert find_path(body, "data.nope", None) is None
    with pytest.raises(KeyError):
        find_path(body, "data.nope")
    record = {"a": {"b": {"c": 1}, "d": [1, {"e": 2}]}, "f": {}}
    assert flatten_record(record, sep=".") == {"a.b.c": 1, "a.d": [1, {"e": 2}], "f": None}


def test_import_stays_light() -> None:
    heavy = ("httpx", "pyarrow", "tenacity", "sqlite3")
    code = f"import sys, bubbles.data.http; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
