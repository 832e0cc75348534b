"""A client-side rate limit shared by everything in the process that calls the same host.

:class:`RateLimit` is the setting (``"10/s"``, ``"600/min"``, ``RateLimit(5, per="second")``);
:func:`limiter_for` returns the one :class:`RateLimiter` of the process for a host and setting,
so every :class:`~bubbles.data.http.ApiSource`, every page-fetching thread and every task of
the threads executor that targets that host draws from the same budget. (Tasks in other
processes or on Dask workers have their own; divide the rate between them.)

The limiter is a reservation scheduler (GCRA): each request takes the next free slot, spaced
``1/rate`` seconds apart, with up to ``burst`` requests let through at once. A request sleeps
until its slot outside the lock, so waiting threads do not block each other. A server's
``Retry-After`` pushes every slot of the host back (:meth:`RateLimiter.defer`).

We keep this small class rather than pyrate-limiter: the pacing is exact (the benchmark holds
the achieved rate within 5% of the setting), and it needs no polling loop or bucket backend.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass

from ..._errors import ConfigError

__all__ = ["RateLimit", "RateLimiter", "limiter_for"]

_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0, "h": 3600.0, "hour": 3600.0}
_SPEC = r"^\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+?)s?\s*$"


@dataclass(frozen=True)
class RateLimit:
    """At most ``requests`` per ``per`` (second, minute, hour) to one host.

    Args:
        requests: how many requests.
        per: ``"second"``, ``"minute"`` or ``"hour"``.
        burst: how many may go at once after an idle spell (1 = evenly spaced).
        key: limiters are shared per (host, rate, burst, key); give a key to keep one apart.

    Example:
        >>> RateLimit.parse("600/min").per_second
        10.0
    """

    requests: float
    per: str = "second"
    burst: int = 1
    key: str = ""

    def __post_init__(self) -> None:
        if self.per not in _UNITS:
            raise ConfigError(f"RateLimit(per={self.per!r}) is not a unit; use 'second', 'minute' or 'hour'.")
        if not self.requests > 0 or self.burst < 1:
            raise ConfigError(
                f"RateLimit({self.requests!r}/{self.per}, burst={self.burst}) must allow a positive rate and burst >= 1."
            )

    @property
    def per_second(self) -> float:
        return self.requests / _UNITS[self.per]

    @classmethod
    def parse(cls, spec: str | float | RateLimit) -> RateLimit:
        """``"10/s"``, ``"600/min"``, ``"5000/hour"``, a number (per second) or a RateLimit."""
        if isinstance(spec, RateLimit):
            return spec
        if isinstance(spec, int | float) and not isinstance(spec, bool):
            return cls(float(spec))
        match = re.match(_SPEC, str(spec).lower())
        if not match or match.group(2) not in _UNITS:
            raise ConfigError(
                f"Rate limit {spec!r} is not understood. Write e.g. '10/s', '600/min' or '5000/hour', or a number per second."
            )
        unit = match.group(2)
        per = "second" if _UNITS[unit] == 1 else "minute" if _UNITS[unit] == 60 else "hour"
        return cls(float(match.group(1)), per)


class RateLimiter:
    """Thread-safe pacing of requests at ``rate`` per second, ``burst`` at once."""

    def __init__(self, rate: float, burst: int = 1, name: str = "") -> None:
        self.rate = rate
        self.burst = burst
        self.name = name
        self._interval = 1.0 / rate
        self._tat = 0.0  # theoretical arrival time of the next request (monotonic clock)
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take the next slot; return how many seconds the caller must wait for it."""
        with self._lock:
            now = time.monotonic()
            tat = max(self._tat, now)
            start = max(now, tat - (self.burst - 1) * self._interval)
            self._tat = tat + self._interval
        return start - now

    def acquire(self) -> float:
        """Wait for the next slot; return the seconds waited."""
        wait = self.reserve()
        if wait > 0:
            time.sleep(wait)
        return max(wait, 0.0)

    def defer(self, seconds: float) -> None:
        """Let no request through for ``seconds`` (the server said ``Retry-After``)."""
        with self._lock:
            self._tat = max(self._tat, time.monotonic() + seconds)

    def __repr__(self) -> str:
        return f"RateLimiter({self.name!r}, {self.rate:g}/s, burst={self.burst})"


_limiters: dict[tuple[str, float, int, str], RateLimiter] = {}
_registry_lock = threading.Lock()


def limiter_for(host: str, limit: RateLimit | str | float) -> RateLimiter:
    """The process-wide limiter for ``host`` (``scheme://host:port``) at ``limit``."""
    spec = RateLimit.parse(limit)
    key = (host, spec.per_second, spec.burst, spec.key)
    with _registry_lock:
        limiter = _limiters.get(key)
        if limiter is None:
            limiter = _limiters[key] = RateLimiter(spec.per_second, spec.burst, name=host)
        return limiter
