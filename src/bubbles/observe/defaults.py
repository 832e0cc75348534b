"""What watches every run by default: called by the run session once per run.

``hooks_for_run`` returns the hooks (run history, system resources, console logs, progress
display, Prometheus), ``probes_for_run`` the per-attempt probes (peak memory, profiling) and
``log_capture`` installs the capture of tasks' ``logging`` records for the run (and undoes it
after), as the run's settings (:mod:`bubbles._settings`) ask:

======================= =========================================================== ==================
setting                 effect                                                      default
======================= =========================================================== ==================
``history``             ``false`` turns the run history (and resource sampling) off on
``home``                where the run store (``history.db``) lives                  ~/.local/share/bubbles
``store``               the run store: a SQLite file or a ``postgresql://`` URL     history.db in home
``resources``           ``false`` turns CPU/memory sampling of the process tree off on
``log_format``          ``text`` or ``json`` console events (``--log-format``)      text on a TTY
``progress``            live progress display (``--progress``)                      on a TTY
``metrics_port``        serve Prometheus ``/metrics`` on this port                  off
``metrics_addr``        bind address for it                                         0.0.0.0
``pushgateway``         push metrics to this Pushgateway URL at the end             off
``memory``              ``false`` turns the per-attempt peak-memory probe off       on
``capture_logs``        ``false`` turns capture of task ``logging`` records off     on
``profile``             profile every attempt with cProfile (``--profile``)         off
``lineage``             ``file`` (OpenLineage events in ``lineage.jsonl`` in the    file
                        home), ``console``, or ``off`` (no lineage recorded at all)
``lineage_url``         also send OpenLineage events to this backend (Marquez ...)  off
``lineage_tasks``       ``all``: task events for every task, not only those that   data
                        touched data or failed
======================= =========================================================== ==================

Each is also a ``BUBBLES_<NAME>`` environment variable and a key of ``[settings]`` in
``bubbles.toml``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .._settings import Settings

__all__ = ["hooks_for_run", "log_capture", "probes_for_run"]


def _is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def hooks_for_run(settings: Settings) -> list[Any]:
    """Default hooks for one run, in the order they receive events."""
    hooks: list[Any] = []
    if settings.history:
        from .history import RunRecorder

        sampler = None
        if settings.resources:
            from .resources import ResourceSampler

            sampler = ResourceSampler(settings.resource_interval)
            hooks.append(sampler)  # before the recorder: stops sampling before the run is written
        hooks.append(RunRecorder(resources=sampler, timeout=settings.history_timeout, lease=settings.lease_seconds))
    fmt = settings.log_format or ("text" if _is_tty() else None)
    progress = None
    show_progress = settings.progress if settings.progress is not None else _is_tty() and fmt != "json"
    if show_progress:
        from .progress import ProgressDisplay

        progress = ProgressDisplay()
        hooks.append(progress)
    if fmt:
        from .logs import ConsoleLog

        hooks.append(ConsoleLog(fmt, progress=progress))
    if settings.metrics_port or settings.pushgateway:
        from .prometheus import PrometheusExporter

        hooks.append(PrometheusExporter(settings.metrics_port, addr=settings.metrics_addr, pushgateway=settings.pushgateway))
    if settings.lineage != "off" and _lineage_wanted(settings):
        from .lineage import LineageEmitter

        hooks.append(LineageEmitter())
    return hooks


def _lineage_wanted(settings: Settings) -> bool:
    """OpenLineage events need the client: without it, only a lineage the user asked for says so (once)."""
    import importlib.util

    if importlib.util.find_spec("openlineage") is not None:
        return True
    return settings.source("lineage") != "default" or bool(settings.lineage_url)


def probes_for_run(settings: Settings) -> tuple[Any, ...]:
    """Default per-attempt probes for one run."""
    probes: list[Any] = []
    if settings.memory:
        from .memory import MemoryProbe

        probes.append(MemoryProbe(settings.memory_interval))
    if settings.profile:
        from .profile import ProfileProbe

        probes.append(ProfileProbe(settings.profile_lines))
    return tuple(probes)


@contextmanager
def log_capture(settings: Settings) -> Iterator[None]:
    """Keep tasks' ``logging`` records for the run's attempts, in this process, for the block."""
    if not settings.capture_logs:
        yield
        return
    from .logs import install_capture, uninstall_capture

    install_capture(settings)
    try:
        yield
    finally:
        uninstall_capture()
