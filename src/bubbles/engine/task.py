"""What one task is: a function, its name, and how it is retried and timed out.

A :class:`TaskSpec` is immutable once the run starts. Its ``name`` is its identity: stable across
runs (the run history and resuming key on it), unique within a workflow.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .._errors import ConfigError

__all__ = ["RetryPolicy", "TaskSpec", "parse_ttl", "task_name_of"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a failed task is tried again.

    The wait before attempt ``n + 1`` is ``retry_delay * backoff ** (n - 1)``, capped at
    ``max_delay``; with ``jitter`` it is drawn uniformly from the upper half of that, so many
    tasks failing together do not retry in lockstep.
    """

    retries: int = 0
    retry_delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 300.0
    jitter: bool = True
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        if not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigError(f"retries must be a whole number >= 0, got {self.retries!r}.")
        if self.retry_delay < 0 or self.backoff < 1 or self.max_delay < 0:
            raise ConfigError(
                "retry_delay and max_delay must be >= 0 and backoff >= 1, got "
                f"retry_delay={self.retry_delay!r}, backoff={self.backoff!r}, max_delay={self.max_delay!r}."
            )
        for exc in self.retry_on:
            if not (isinstance(exc, type) and issubclass(exc, BaseException)):
                raise ConfigError(f"retry_on must hold exception classes, got {exc!r}.")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.max_delay, self.retry_delay * self.backoff ** (attempt - 1))
        return base / 2 + random.uniform(0, base / 2) if self.jitter else base

    def should_retry(self, error: BaseException | None, attempt: int) -> bool:
        """Whether failed attempt ``attempt`` deserves another try."""
        if attempt > self.retries or error is None:
            return False
        if getattr(error, "transient", None) is False:
            return False
        if isinstance(error, self.retry_on):
            return True
        original = getattr(error, "original", None)  # a MaskedError standing in for the task's error
        return isinstance(original, type) and issubclass(original, self.retry_on)


@dataclass(frozen=True, slots=True, eq=False)
class TaskSpec:
    """A task as the engine sees it: the function plus its run options."""

    fn: Callable[..., Any]
    name: str
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float | None = None
    on_success: Callable[..., Any] | None = None
    on_failure: Callable[..., Any] | None = None
    tags: tuple[str, ...] = ()
    cache: bool | float | str | None = None  # reuse an earlier run's output with the same key (True, seconds, "1h")
    persist: bool | None = None  # keep the output for resume (None: as the run's persist setting says)

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise ConfigError(f"Task {self.name!r}: {self.fn!r} is not callable; pass a function.")
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"A task name must be a non-empty string, got {self.name!r}.")
        if self.timeout is not None and not self.timeout > 0:
            raise ConfigError(f"Task {self.name!r}: timeout must be a positive number of seconds, got {self.timeout!r}.")
        if self.cache not in (None, False):
            try:
                parse_ttl(self.cache)
            except ConfigError as exc:
                raise ConfigError(f"Task {self.name!r}: {exc}", task=self.name) from None

    def renamed(self, name: str) -> TaskSpec:
        return replace(self, name=name)


def parse_ttl(value: Any) -> float | None:
    """``cache=`` as the age an entry may have: ``True`` (any: ``None``), seconds, or ``"30s"``, ``"1h"``, ``"2d"``."""
    if value is True:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        for suffix, scale in (("min", 60), ("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)):
            if text.endswith(suffix) and text[: -len(suffix)].strip().replace(".", "", 1).isdigit():
                return float(text[: -len(suffix)]) * scale
    raise ConfigError(
        f"cache={value!r} is not a time to keep: use True, a number of seconds, or e.g. '30s', '10min', '1h', '2d'."
    )


def task_name_of(fn: Callable[..., Any]) -> str:
    """The default task name of a function: its ``__name__`` (``functools.partial`` unwrapped)."""
    inner = getattr(fn, "func", fn)
    inner = getattr(inner, "__wrapped__", inner)
    name = getattr(inner, "__name__", None) or type(inner).__name__
    return "lambda" if name == "<lambda>" else name
