"""Every error bubbles raises, in one tree.

```
BubblesError                      root: catch this to catch anything bubbles raises
├── GraphError                    the workflow cannot run as declared (found before running)
│   ├── CycleError                tasks depend on each other in a loop
│   ├── UnknownTaskError          a dependency names a task that is not in the workflow
│   ├── DuplicateTaskError        two tasks share a name
│   ├── SignatureError            a task's parameters do not fit what it is given
│   └── NotPicklableError         the processes/dask executor cannot ship a task
├── TaskError                     raised *inside* a task run (carries task, attempt, run_id)
│   ├── TaskTimeout               the task ran past its timeout
│   ├── TaskAborted               the task raised SystemExit, KeyboardInterrupt or GeneratorExit
│   ├── RemoteTaskError           a worker's exception that could not be sent back as itself
│   ├── UpstreamFailed            the task did not run because a task it needs failed
│   ├── WorkerDied                a worker process died running it      (engine.executors.processes)
│   ├── SchedulerLost             the Dask scheduler went away           (engine.executors.dask)
│   └── DaskTaskError             Dask itself failed the task            (engine.executors.dask)
├── RunFailed                     a run ended with failed tasks; carries the RunResult
│   └── RunCancelled              the run was cancelled (Ctrl-C); carries the RunResult
├── ConfigError                   bad option, bad CLI argument, missing secret or setting
│   ├── MissingDependencyError    an optional library is not installed; names the pip line
│   └── DaskConnectionError       no Dask scheduler at the address        (engine.executors.dask)
├── DataError                     bad input data: file, line/row, column, what was expected
│   ├── BadLineError              a malformed CSV line                    (data.files)
│   ├── SourceChangedError        a file a planned read relies on changed (data.lazy)
│   ├── SchemaDriftError          incoming columns do not fit the table   (data.db)
│   └── ApiResponseError          an API answered garbage (also an ApiError)
│       └── PaginationLoopError   an API returned the same cursor twice
├── DatabaseError                 (data.db)
│   ├── ConnectionFailed          host/database unreachable or refused (never shows the password)
│   ├── QueryError                the database rejected a query; its message, the task, the query
│   └── ConstraintViolation       a load broke a constraint; rolled back; names table and key
├── ApiError                      an HTTP API source failed: URL, page, status (data.http)
│   ├── ApiRequestError           network error, timeout, or HTTP error status after retries
│   └── CircuitOpenError          the host's circuit breaker is open: failing fast
├── DeliveryError                 a deliverable could not be handed over   (data.deliver)
└── HistoryError                  the run-history database is locked, corrupt or too new (observe.history)
```
Every error pickles with its fields (it must survive process and Dask boundaries), and
carries ``transient``: ``True`` means trying again may help (a network blip), ``False`` means it
will not (a cycle, a malformed file), ``None`` means unknown. The runner never retries an
error marked ``transient=False``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BubblesError",
    "ConfigError",
    "CycleError",
    "DataError",
    "DuplicateTaskError",
    "GraphError",
    "MissingDependencyError",
    "NotPicklableError",
    "PoolClosedError",
    "RemoteTaskError",
    "RunCancelled",
    "RunFailed",
    "SignatureError",
    "TaskError",
    "TaskAborted",
    "TaskTimeout",
    "UnknownTaskError",
    "UpstreamFailed",
]


class BubblesError(Exception):
    """Root of every error raised by bubbles.

    Subclasses keep their fields as attributes and pickle with them.
    """

    transient: bool | None = None

    def __init__(self, message: str = "", **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self._fields = fields
        for key, value in fields.items():
            setattr(self, key, value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self._fields, self.__dict__))

    def __str__(self) -> str:
        return self.message


def _rebuild(cls: type[BubblesError], message: str, fields: dict[str, Any], state: dict[str, Any]) -> BubblesError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    err.message = message
    err._fields = fields
    return err


class GraphError(BubblesError):
    """The workflow cannot run as declared; found by validation, before any task runs."""

    transient = False


class CycleError(GraphError):
    """Tasks depend on each other in a loop. ``cycle`` lists the task names around it."""


class UnknownTaskError(GraphError):
    """A dependency names a task that is not part of the workflow."""


class DuplicateTaskError(GraphError):
    """Two tasks in one workflow have the same name."""


class SignatureError(GraphError):
    """A task function's parameters do not fit the inputs the workflow gives it."""


class NotPicklableError(GraphError):
    """The processes or dask executor cannot send a task (or its arguments) to a worker."""


class TaskError(BubblesError):
    """An error raised while running a task; carries ``task``, ``attempt`` and ``run_id``."""


class TaskTimeout(TaskError):
    """The task ran longer than its ``timeout``."""

    transient = True


class TaskAborted(TaskError):
    """The task raised ``SystemExit``, ``KeyboardInterrupt`` or ``GeneratorExit`` itself.

    Such an exception would end the interpreter or the worker; a task raising one fails
    instead (not retried: it was deliberate). ``error_type`` names what it raised.
    """

    transient = False


class RemoteTaskError(TaskError):
    """An exception from a worker that could not be sent back as itself.

    ``error_type`` is the original class name, ``remote_traceback`` the worker's traceback.
    """


class UpstreamFailed(TaskError):
    """The task was not run because a task it depends on failed."""

    transient = False


class RunFailed(BubblesError):
    """A run finished with at least one failed task. ``result`` is the full ``RunResult``."""


class RunCancelled(RunFailed):
    """A run was cancelled (Ctrl-C or ``cancel()``). ``result`` holds what finished."""


class ConfigError(BubblesError):
    """A setting, option, argument or secret is missing or wrong."""

    transient = False


class PoolClosedError(ConfigError):
    """A run was started on an executor pool after it was shut down (its ``with`` block ended)."""


class MissingDependencyError(ConfigError):
    """An optional library is needed; the message gives the exact ``pip install`` line."""

    def __init__(self, feature: str, package: str, extra: str) -> None:
        super().__init__(
            f"{feature}: the optional package {package!r} is needed and not installed. "
            f"Install it with: pip install 'pybubbles[{extra}]'",
            feature=feature,
            package=package,
            extra=extra,
        )


class DataError(BubblesError):
    """Input data is malformed or does not match what was declared.

    Fields, when known: ``source`` (file, table or URL), ``line`` or ``row``, ``column``,
    ``raw`` (the offending text).
    """

    transient = False


def describe_error(error: BaseException) -> str:
    """``"Type: message"`` for any exception, also one whose ``__str__`` fails (then its repr)."""
    try:
        text = str(error)
    except Exception:
        try:
            text = repr(error)
        except Exception:
            text = "(the error cannot be printed)"
    return f"{type(error).__name__}: {text}"
