"""What watches every run by default: called by the API layer once per run.

``hooks_for_run`` returns the hooks (run history, system resources, console logs, progress
display, Prometheus), ``probes_for_run`` the per-attempt probes (peak memory, profiling) and
``capture_logs`` whether tasks' ``logging`` records are kept, that a run gets without the user
asking. Settings come from ``BUBBLES_*``
environment variables, which the ``bubbles run`` command sets from its flags:

=========================== =========================================================== =========
variable                    effect                                                      default
=========================== =========================================================== =========
``BUBBLES_HISTORY``         ``0`` turns the run history (and resource sampling) off     on
``BUBBLES_HOME``            where ``history.db`` lives                                  .bubbles
``BUBBLES_RESOURCES``       ``0`` turns CPU/memory sampling of the process tree off     on
``BUBBLES_LOG_FORMAT``      ``text`` or ``json`` console events (``--log-format``)      text on a TTY, else none
``BUBBLES_PROGRESS``        ``1``/``0`` live progress display (``--progress``)          on a TTY
``BUBBLES_METRICS_PORT``    serve Prometheus ``/metrics`` on this port                  off
``BUBBLES_METRICS_ADDR``    bind address for it                                         0.0.0.0
``BUBBLES_PUSHGATEWAY``     push metrics to this Pushgateway URL at the end             off
``BUBBLES_MEMORY``          ``0`` turns the per-attempt peak-memory probe off           on
``BUBBLES_CAPTURE_LOGS``    ``0`` turns capture of task ``logging`` records off         on
``BUBBLES_PROFILE``         ``1`` profiles every attempt with cProfile (``--profile``)  off
=========================== =========================================================== =========
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["capture_logs", "hooks_for_run", "probes_for_run"]

_OFF = ("0", "false", "no", "off")


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() not in _OFF


def _is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def hooks_for_run(*, run_id: str, workflow: str, options: Any) -> list[Any]:
    """Default hooks for one run, in the order they receive events."""
    hooks: list[Any] = []
    if _flag("BUBBLES_HISTORY", True):
        from .history import RunRecorder

        sampler = None
        if _flag("BUBBLES_RESOURCES", True):
            from .resources import ResourceSampler

            sampler = ResourceSampler()
            hooks.append(sampler)  # before the recorder: stops sampling before the run is written
        hooks.append(RunRecorder(resources=sampler))
    fmt = os.environ.get("BUBBLES_LOG_FORMAT") or ("text" if _is_tty() else None)
    progress = None
    if _flag("BUBBLES_PROGRESS", _is_tty() and fmt != "json"):
        from .progress import ProgressDisplay

        progress = ProgressDisplay()
        hooks.append(progress)
    if fmt:
        from .logs import ConsoleLog

        hooks.append(ConsoleLog(fmt, progress=progress))
    port = os.environ.get("BUBBLES_METRICS_PORT")
    gateway = os.environ.get("BUBBLES_PUSHGATEWAY")
    if port or gateway:
        from .._errors import ConfigError
        from .prometheus import PrometheusExporter

        try:
            port_number = int(port) if port else None
        except ValueError:
            raise ConfigError(f"BUBBLES_METRICS_PORT={port!r} is not a port number; use e.g. --metrics-port 9100.") from None
        hooks.append(
            PrometheusExporter(port_number, addr=os.environ.get("BUBBLES_METRICS_ADDR", "0.0.0.0"), pushgateway=gateway or None)
        )
    return hooks


def probes_for_run(*, options: Any) -> tuple[Any, ...]:
    """Default per-attempt probes for one run."""
    probes: list[Any] = []
    if _flag("BUBBLES_MEMORY", True):
        from .memory import MemoryProbe

        probes.append(MemoryProbe())
    if _flag("BUBBLES_PROFILE", False):
        from .profile import ProfileProbe

        probes.append(ProfileProbe())
    return tuple(probes)


def capture_logs() -> bool:
    """Whether a run keeps its tasks' ``logging`` records (``BUBBLES_CAPTURE_LOGS``, on by default)."""
    return _flag("BUBBLES_CAPTURE_LOGS", True)
