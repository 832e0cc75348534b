"""The run context: everything one run carries, created once when the run starts.

Many runs may share one process (a service, the coming web UI and scheduler, tests), so
nothing about a run lives in globals. A :class:`RunContext` holds

* ``settings`` — resolved once (code > CLI flags > environment > ``bubbles.toml`` > defaults,
  see :mod:`bubbles._settings`), each value knowing where it came from;
* ``secrets`` — the :class:`~bubbles._secrets.SecretRegistry` of the secrets this run and its
  workers resolved, so everything the run shows or stores is masked with them;
* ``hooks`` — its observers (the defaults its settings ask for, plus the user's);
* ``executor`` — the pool it runs on (the runner opens its per-run handle on it).

While the run is set up and driven, :meth:`RunContext.active` makes its settings and secrets
the ones that apply on the driving thread (context variables, undone afterwards): a connector
opened by a ``@bubbles`` body or a hook registers its secrets with this run, not another.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .._secrets import SecretRegistry, _run_registry, begin_run, end_run, process_registry
from .._settings import Settings, run_settings

__all__ = ["RunContext"]


@dataclass(eq=False)
class RunContext:
    """One run's settings, secrets, observers and executor (see the module docstring)."""

    run_id: str
    workflow: str
    settings: Settings
    secrets: SecretRegistry = field(default_factory=lambda: SecretRegistry(process_registry()))
    hooks: Any = None
    executor: Any = None

    def mask(self, text: str) -> str:
        """``text`` with every secret this run knows masked."""
        return self.secrets.mask(text)

    @contextmanager
    def active(self) -> Iterator[RunContext]:
        """Make this run's settings and secrets the ones that apply on this thread, for the block."""
        token = _run_registry.set(self.secrets)
        begin_run(self.secrets)
        try:
            with run_settings(self.settings):
                yield self
        finally:
            end_run(self.secrets)
            _run_registry.reset(token)
