"""A circuit breaker per host: stop calling a server that keeps failing, try again after a pause.

States (Nygard, *Release It!*):

- **closed**: requests go through; each failure (connection error, timeout, 5xx) counts, any
  success resets the count. ``failures`` consecutive failures *trip* it open.
- **open**: requests fail at once with :class:`~bubbles.data.http.errors.CircuitOpenError`,
  nothing is sent, for ``cooldown`` seconds.
- **half-open**: after the cool-down one probe request is let through (others still fail fast);
  its success closes the breaker, its failure opens it for another cool-down.

A 429 is neither success nor failure (the server is alive and asks us to slow down, which the
retry and rate limiter handle); other 4xx count as success (the server answered).

:func:`breaker_for` keeps one breaker per (host, settings) for the whole process, so every task
and thread calling a host sees the same state. State changes are logged on ``bubbles.http``.

We keep this small class rather than pybreaker: ``pybreaker.CircuitBreaker.call`` holds its lock
while the guarded call runs, which would serialize the concurrent page fetches of a source.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from ..._errors import ConfigError

__all__ = ["Breaker", "CircuitBreaker", "breaker_for"]

log = logging.getLogger("bubbles.http")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


@dataclass(frozen=True)
class Breaker:
    """Circuit breaker settings for a source.

    Args:
        failures: consecutive failures that open the breaker.
        cooldown: seconds it stays open before one probe request is let through.
        key: breakers are shared per (host, failures, cooldown, key); give a key to keep one apart.

    Example:
        >>> Breaker(failures=5, cooldown=30.0)
        Breaker(failures=5, cooldown=30.0, key='')
    """

    failures: int = 5
    cooldown: float = 30.0
    key: str = ""

    def __post_init__(self) -> None:
        if self.failures < 1 or self.cooldown < 0:
            raise ConfigError(
                f"Breaker(failures={self.failures}, cooldown={self.cooldown}) needs failures >= 1 and cooldown >= 0."
            )


class CircuitBreaker:
    """The live breaker of one host; thread-safe, and never holds its lock during a request."""

    def __init__(self, failures: int = 5, cooldown: float = 30.0, name: str = "") -> None:
        self.failures = failures
        self.cooldown = cooldown
        self.name = name
        self.trips = 0  # times it opened, over its life
        self._state = CLOSED
        self._count = 0
        self._opened_at = 0.0
        self._probing = False
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half-open"`` (open past its cool-down reads half-open)."""
        with self._lock:
            if self._state == OPEN and time.monotonic() - self._opened_at >= self.cooldown:
                return HALF_OPEN
            return self._state

    def allow(self) -> float | None:
        """``None`` if a request may go now, else the seconds until the breaker half-opens."""
        with self._lock:
            if self._state == CLOSED:
                return None
            remaining = self._opened_at + self.cooldown - time.monotonic()
            if self._state == OPEN and remaining <= 0:
                self._state = HALF_OPEN
                self._probing = False
                log.info("circuit breaker for %s half-open: sending one probe request", self.name)
            if self._state == HALF_OPEN and not self._probing:
                self._probing = True
                return None
            return max(remaining, 0.0)

    def success(self) -> None:
        with self._lock:
            self._count = 0
            if self._state != CLOSED:
                self._state, self._probing = CLOSED, False
                log.warning("circuit breaker for %s closed: the probe request succeeded", self.name)

    def failure(self) -> bool:
        """Count a failure; ``True`` if this one opened the breaker."""
        with self._lock:
            self._count += 1
            if self._state == HALF_OPEN or (self._state == CLOSED and self._count >= self.failures):
                self._state, self._probing = OPEN, False
                self._opened_at = time.monotonic()
                self.trips += 1
                log.warning(
                    "circuit breaker for %s opened after %d consecutive failures; failing fast for %g s",
                    self.name,
                    self._count,
                    self.cooldown,
                )
                return True
            return False

    def release(self) -> None:
        """The probe ended without a verdict (e.g. a 429): let the next request probe."""
        with self._lock:
            self._probing = False

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, {self.state}, failures={self.failures}, cooldown={self.cooldown:g})"


_breakers: dict[tuple[str, int, float, str], CircuitBreaker] = {}
_registry_lock = threading.Lock()


def breaker_for(host: str, settings: Breaker) -> CircuitBreaker:
    """The process-wide breaker for ``host`` (``scheme://host:port``) with ``settings``."""
    key = (host, settings.failures, settings.cooldown, settings.key)
    with _registry_lock:
        breaker = _breakers.get(key)
        if breaker is None:
            breaker = _breakers[key] = CircuitBreaker(settings.failures, settings.cooldown, name=host)
        return breaker
