"""Task logs: captured per task and attempt, and printed to the console as text or JSON lines.

Capture (on by default, ``BUBBLES_CAPTURE_LOGS=0`` turns it off): ordinary ``logging`` calls
made while a task runs — in a thread, a worker process or a Dask worker — are kept with that
attempt and reach the hooks as ``on_task_end(logs=[...])`` and the run's journal, then the run
history. Records are taken as ``logging`` creates them (:func:`install_capture`, for the
length of a run in the run's process, and for good in a worker process) and kept with the attempt whose
:class:`~bubbles.TaskContext` is current, so nothing is captured outside a task (nor from threads
a task starts itself, which do not inherit it), an attempt pays nothing for capture unless it
logs, and no handler is added: the program's logging output is what it would be without bubbles.
Records below a logger's level are never created, so the root level is lowered to
``BUBBLES_CAPTURE_LEVEL`` (default INFO) when it is higher; the program's own root handlers (and
Python's last-resort output) are set to the old level so that they show what they showed before.
A handler added during a run, e.g. by ``logging.basicConfig()`` without a level, then shows INFO
records too: give it a level, or set ``BUBBLES_CAPTURE_LEVEL=WARNING``. When the last run of the
process ends, the record factory and the levels are put back as they were.

Each captured entry is a dict: ``{"kind": "log", "time", "level", "logger", "message"}`` (plus
``"exc"`` with the formatted exception if any). Secrets are masked. At most
``BUBBLES_LOG_LIMIT`` (default 1000) records are kept per attempt; the rest are counted in a
final ``{"kind": "log", "level": "WARNING", "message": "... N more records dropped"}``.

Console (:class:`ConsoleLog`, a hook): ``text`` for people (run start and end, retries,
failures with their last traceback frame, and the records tasks logged), ``json`` for machines:
one JSON object per line per event with ``event``, ``run_id``, ``workflow``, ``task``,
``attempt`` and the event's fields; its times (``time``, ``started_at``, ``ended_at``,
``attempt_started_at``) are ISO 8601 in UTC with milliseconds (``2026-12-01T20:31:19.123Z``),
durations are seconds. Chosen by ``--log-format`` / ``BUBBLES_LOG_FORMAT``. JSON
lines are written as each event happens; text follows the run's journal (every
``follow_every`` seconds, 0.2 by default, on its own thread, and at the end), so a terminal costs
a run nothing per task — unless ``task_events`` asks for a line per task start and success.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import IO, Any

from .._context import _current
from .._errors import describe_error
from .._secrets import anything_to_mask, mask, mask_anywhere
from .format import iso_time

__all__ = ["ConsoleLog", "JsonLogLines", "install_capture", "leave_task_records_to_the_console", "uninstall_capture"]

_install_lock = threading.Lock()


def _level_of(settings: Any) -> int:
    level = logging.getLevelName(str(getattr(settings, "capture_level", "INFO") or "INFO").upper())
    return level if isinstance(level, int) else logging.INFO


def _mask_record(record: logging.LogRecord) -> None:
    """Mask a record in place with every live run's secrets (what the program's own handlers print)."""
    try:
        message = record.getMessage()
    except Exception:
        return
    masked = mask_anywhere(message)
    if masked != message:
        record.msg, record.args = masked, None
    if record.exc_info:
        record.exc_text = mask_anywhere(logging.Formatter().formatException(record.exc_info))


def _keep(ctx: Any, record: logging.LogRecord, limit: int) -> None:
    """Add ``record`` to the logs of the attempt ``ctx`` (within its run's own capture level and limit)."""
    settings = ctx.settings
    if settings is not None:
        if record.levelno < _level_of(settings):
            return
        limit = max(1, int(settings.log_limit or limit))
    with _install_lock:  # (threads sharing one context, e.g. asyncio.to_thread, must not lose records)
        _keep_locked(ctx, record, limit)


def _keep_locked(ctx: Any, record: logging.LogRecord, limit: int) -> None:
    sink = ctx.logs
    if sink is None:  # the first record: an attempt that logs nothing allocates nothing
        sink = ctx.logs = []
    if len(sink) >= limit:
        if len(sink) == limit:
            sink.append(
                {"kind": "log", "time": record.created, "level": "WARNING", "logger": "bubbles", "message": "", "dropped": 0}
            )
        sink[-1]["dropped"] += 1
        sink[-1]["message"] = f"... {sink[-1]['dropped']} more records dropped (the log_limit setting is {limit})"
        return
    try:
        message = record.getMessage()
    except Exception as exc:  # a bad format string must not break the task
        message = f"{record.msg!r} (unformattable: {exc})"
    masked = mask(message)
    if masked != message:  # the program's own handlers print the record too: never with a secret in it
        record.msg, record.args = masked, None
    entry = {"kind": "log", "time": record.created, "level": record.levelname, "logger": record.name, "message": masked}
    if record.exc_info:
        exc_text = mask(logging.Formatter().formatException(record.exc_info))
        entry["exc"] = record.exc_text = exc_text  # what handlers print for the exception (they use it when set)
    sink.append(entry)


class _Capture:
    """What :func:`install_capture` changed in ``logging``, to undo it when the last run ends."""

    def __init__(self) -> None:
        self.users = 0
        self.permanent = False
        self.factory: Any = None  # the record factory we wrapped
        self.ours: Any = None  # our wrapper
        self.root_level: int | None = None  # the root level before we lowered it
        self.handler_levels: list[tuple[logging.Handler, int]] = []
        self.last_resort_level: int | None = None
        self.limit = 1000


_capture = _Capture()


def install_capture(settings: Any = None, *, permanent: bool = False) -> None:
    r"""Start keeping tasks' log records in this process (``uninstall_capture`` undoes it).

    The records are taken where ``logging`` creates them (a wrapped log-record factory), not by a
    handler: the program's own handlers, ``logging.basicConfig`` and Python's last-resort output
    of warnings work exactly as without bubbles. Runs in one process share one installation
    (counted); when the last one ends, the factory and the levels are put back as they were.
    A worker process installs it for good (``permanent``).
    """
    with _install_lock:
        _capture.permanent = _capture.permanent or permanent
        _capture.users += 1
        level = _level_of(settings)
        root = logging.getLogger()
        if _capture.users > 1:  # another run captures already: only lower the root level if this one asks lower
            if root.level > level:
                if _capture.root_level is None:
                    _capture.root_level = root.level
                root.setLevel(level)
            return
        _capture.limit = max(1, int(getattr(settings, "log_limit", 1000) or 1000))
        _capture.handler_levels = []
        _capture.root_level = None
        _capture.last_resort_level = None
        if root.level > level:
            # records below the root level are never created; lower it, and keep the program's own
            # root handlers showing exactly what they showed before
            for handler in root.handlers:
                if handler.level == logging.NOTSET:
                    _capture.handler_levels.append((handler, handler.level))
                    handler.setLevel(root.level)
            if logging.lastResort is not None and not root.handlers:
                _capture.last_resort_level = logging.lastResort.level
                logging.lastResort.setLevel(max(logging.lastResort.level, root.level))
            _capture.root_level = root.level
            root.setLevel(level)
        make_record = logging.getLogRecordFactory()

        def record_and_keep(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = make_record(*args, **kwargs)
            if _capture.ours is not record_and_keep:  # uninstalled, but wrapped by someone since: pass through
                return record
            ctx = _current.get()
            if ctx is not None and ctx.capture_logs and record.name is not None:
                try:
                    _keep(ctx, record, _capture.limit)
                except Exception:  # keeping a record must never break the task's logging call
                    return record
                record.bubbles_task = ctx.task  # (a ConsoleLog prints it: see leave_task_records_to_the_console)
            elif ctx is None and anything_to_mask():
                _mask_record(record)  # a record no task owns (a thread a task started, a hook): no secret in it
            return record

        _capture.factory, _capture.ours = make_record, record_and_keep
        logging.setLogRecordFactory(record_and_keep)


def uninstall_capture() -> None:
    """One run that captured has ended; the last one puts ``logging`` back as it found it."""
    with _install_lock:
        if _capture.users <= 0:
            return
        _capture.users -= 1
        if _capture.users > 0 or _capture.permanent:
            return
        if logging.getLogRecordFactory() is _capture.ours:
            logging.setLogRecordFactory(_capture.factory)
        _capture.ours = None  # (if someone wrapped ours meanwhile, it now passes records through)
        root = logging.getLogger()
        if _capture.root_level is not None:
            root.setLevel(_capture.root_level)
        for handler, level in _capture.handler_levels:
            handler.setLevel(level)
        if _capture.last_resort_level is not None and logging.lastResort is not None:
            logging.lastResort.setLevel(_capture.last_resort_level)
        _capture.handler_levels, _capture.root_level, _capture.last_resort_level = [], None, None


class _NotFromTasks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "bubbles_task", None) is None


_not_from_tasks = _NotFromTasks()
_quiet_holders = 0  # runs (and worker processes) that print tasks' records themselves


def leave_task_records_to_the_console(quiet: bool = True) -> None:
    """While a :class:`ConsoleLog` prints tasks' records (with their task and attempt), Python's
    last-resort output (warnings of a program with no logging set up) skips them.

    Call with ``quiet=True`` when such a console starts and ``quiet=False`` when it ends; a worker
    process, whose tasks' records go back to the run, calls it once and for good.
    """
    global _quiet_holders
    with _install_lock:
        _quiet_holders += 1 if quiet else -1
        last = logging.lastResort
        if last is None:
            return
        if _quiet_holders > 0 and _not_from_tasks not in last.filters:
            last.addFilter(_not_from_tasks)
        elif _quiet_holders <= 0:
            _quiet_holders = 0
            last.removeFilter(_not_from_tasks)


class JsonLogLines(logging.Handler):
    """Handler writing records from outside tasks as JSON lines (``event: "log"``) to stderr.

    ``bubbles run --log-format json`` makes it Python's last-resort handler (what prints when the
    program set up no logging), so that stderr holds nothing but JSON lines while the program's
    own ``logging`` setup still works; records from tasks are the console's ``task_log``.
    """

    def __init__(self, level: int = logging.WARNING) -> None:
        super().__init__(level)

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "bubbles_task", None) is not None:  # the console's task_log says it
            return
        try:
            line = {"time": iso_time(record.created), "event": "log", "level": record.levelname, "logger": record.name}
            line["message"] = mask(record.getMessage())
            if record.exc_info:
                line["exc"] = mask(logging.Formatter().formatException(record.exc_info))
            sys.stderr.write(json.dumps(line, default=str) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


# -- console ------------------------------------------------------------------------------------
_TIME_FIELDS = frozenset({"started_at", "ended_at", "attempt_started_at"})  # epoch seconds, written as ISO 8601


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, BaseException):
        return mask(describe_error(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return mask(repr(value))


class ConsoleLog:
    """Hook printing a run's events to the console, as text for people or JSON lines.

    Args:
        fmt: ``"text"`` or ``"json"``.
        stream: where to write (default ``sys.stderr``).
        task_events: in text mode also print every task start and success (JSON always does).
        progress: a :class:`~bubbles.observe.progress.ProgressDisplay` to print above.

    Example:
        >>> import io
        >>> from bubbles import Workflow
        >>> out = io.StringIO()
        >>> wf = Workflow("hello")
        >>> _ = wf.add_task(lambda: 1, name="one")
        >>> _ = wf.run(executor="serial", hooks=[ConsoleLog("json", out)])
        >>> json.loads(out.getvalue().splitlines()[-1])["event"]
        'run_end'
    """

    def __init__(
        self,
        fmt: str = "text",
        stream: IO[str] | None = None,
        *,
        task_events: bool = False,
        progress: Any = None,
        follow_every: float = 0.2,
    ) -> None:
        if fmt not in ("text", "json"):
            from .._errors import ConfigError

            raise ConfigError(f"Unknown log format {fmt!r}: use 'text' or 'json' (--log-format / BUBBLES_LOG_FORMAT).")
        self.fmt = fmt
        self.stream = stream
        self.task_events = task_events
        self.progress = progress
        self.follow_every = follow_every
        self._lock = threading.Lock()
        # text without a line per task reads the run's journal instead of being called per task
        self._follows = fmt == "text" and not task_events
        self.events = {"on_run_start", "on_run_end"} if self._follows else None
        self._run: Any = None
        self._seen = 0
        self._stop = threading.Event()
        self._follower: threading.Thread | None = None
        self._mask: Any = mask  # the run's, from on_run_start (the follower thread carries no run context)

    def _write(self, line: str) -> None:
        live = getattr(self.progress, "_live", None)
        if live is not None and self.stream is None:  # print above the live progress display
            live.console.print(line, markup=False, highlight=False, soft_wrap=True)
            return
        stream = self.stream or sys.stderr
        with self._lock:
            stream.write(line + "\n")
            stream.flush()

    def _json(self, event: str, fields: dict[str, Any]) -> None:
        """One JSON line for the event, after one ``task_log`` line per record the attempt logged."""
        for entry in fields.get("logs") or ():
            if entry.get("kind", "log") != "log":
                continue
            line = {
                "time": iso_time(entry.get("time")),
                "event": "task_log",
                "run_id": fields.get("run_id"),
                "workflow": fields.get("workflow"),
                "task": fields.get("task"),
                "attempt": fields.get("attempt"),
                "level": entry.get("level"),
                "logger": entry.get("logger"),
                "message": entry.get("message"),
            }
            if "exc" in entry:
                line["exc"] = entry["exc"]
            self._write(json.dumps(line, default=str))
        record: dict[str, Any] = {"time": iso_time(time.time()), "event": event}
        for key, value in fields.items():
            if key in ("result", "logs", "metrics", "live", "scope") or value is None or value == "" or callable(value):
                continue  # (callables: the run's mask function and the like are not data)
            record[key] = iso_time(value) if key in _TIME_FIELDS and isinstance(value, int | float) else _jsonable(value)
        if fields.get("metrics"):
            record["metrics"] = fields["metrics"]
        self._write(json.dumps(record, default=str))

    def _text_logs(self, task: str, attempt: int, logs: list[dict[str, Any]] | None) -> None:
        for entry in logs or ():
            if entry.get("kind", "log") != "log":
                continue
            stamp = time.strftime("%H:%M:%S", time.localtime(entry.get("time") or time.time()))
            self._write(f"{stamp} {entry.get('level', ''):<7} {task}#{attempt} {entry.get('logger')}: {entry.get('message')}")
            if entry.get("exc"):
                self._write(entry["exc"])

    # -- hook API -------------------------------------------------------------------------------
    def on_run_start(self, **fields: Any) -> None:
        leave_task_records_to_the_console(quiet=True)
        self._mask = fields.get("mask") or mask
        if self.fmt == "json":
            self._json("run_start", {k: v for k, v in fields.items() if k != "tasks"} | {"tasks": len(fields.get("tasks") or ())})
            return
        self._write(
            f"bubbles: run {fields['run_id']} of {fields['workflow']!r} started "
            f"({len(fields.get('tasks') or ())} tasks, {fields.get('executor')})"
        )
        if self._follows and fields.get("live") is not None:
            self._run, self._seen = fields["live"], 0
            self._stop.clear()
            self._follower = threading.Thread(target=self._follow, name="bubbles-console", daemon=True)
            self._follower.start()

    def _follow(self) -> None:
        while not self._stop.wait(self.follow_every):
            self._print_new()

    def _print_new(self) -> None:
        """Print the retries, failures and task logs that ended since the last look."""
        run = self._run
        if run is None:
            return
        entries = run.attempts
        n = len(entries)
        for e in entries[self._seen : n]:
            if e.logs or e.status in ("retrying", "failed"):
                self._text_attempt(
                    e.task,
                    e.attempt,
                    e.status,
                    e.error,
                    e.traceback,
                    e.logs,
                    e.duration,
                    e.delay if e.status == "retrying" else None,
                )
        self._seen = n

    def _text_attempt(
        self,
        task: str,
        attempt: int,
        status: str,
        error: BaseException | None,
        traceback: str | None,
        logs: list[dict[str, Any]] | None,
        duration: float | None,
        delay: float | None = None,
    ) -> None:
        self._text_logs(task, attempt or 0, logs)
        if status == "retrying":
            what = self._mask(describe_error(error)) if error is not None else "no error"
            self._write(f"  retry   {task} attempt {attempt} failed ({what}); next in {delay or 0:.1f}s")
        elif status == "failed":
            from ..engine.result import user_frame

            what = self._mask(describe_error(error)) if error is not None else "no error recorded"
            self._write(f"  FAILED  {task} after {attempt} attempt(s): {what}")
            where = user_frame(traceback or "")
            if where:
                self._write(f"          at {where}")
        elif self.task_events and status == "succeeded":
            self._write(f"  done    {task} in {duration or 0:.3f}s")

    def on_task_start(self, **fields: Any) -> None:
        if self.fmt == "json":
            self._json("task_start", fields)
        elif self.task_events:
            self._write(f"  start   {fields['task']}#{fields['attempt']}")

    def on_task_retry(self, **fields: Any) -> None:
        if self.fmt == "json":
            self._json("task_retry", {k: v for k, v in fields.items() if k != "traceback"})
            return
        f = fields.get
        self._text_attempt(
            fields["task"], fields["attempt"], "retrying", f("error"), f("traceback"), f("logs"), f("duration"), f("delay")
        )

    def on_task_end(self, **fields: Any) -> None:
        if self.fmt == "json":
            self._json("task_end", fields)
            return
        f = fields.get
        self._text_attempt(
            fields["task"], fields["attempt"], fields["status"], f("error"), f("traceback"), f("logs"), f("duration")
        )

    def on_run_end(self, **fields: Any) -> None:
        leave_task_records_to_the_console(quiet=False)
        if self._follower is not None:
            self._stop.set()
            self._follower.join()
            self._follower = None
            self._print_new()  # what ended since the last look
            self._run = None
        if self.fmt == "json":
            result = fields.get("result")
            counts: dict[str, int] = {}
            for t in result.tasks.values() if result is not None else ():
                counts[t.state] = counts.get(t.state, 0) + 1
            self._json("run_end", fields | {"tasks": counts})
        else:
            self._write(f"bubbles: run {fields['run_id']} {fields['status']} in {fields.get('duration') or 0:.2f}s")
