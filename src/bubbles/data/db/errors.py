"""Errors raised by the database connectors.

```
BubblesError
├── DatabaseError            a database said no; carries database (redacted), table, query, task
│   ├── ConnectionFailed     cannot reach or log in to the server (transient: the task's retries apply)
│   ├── QueryError           the database rejected a statement (syntax, missing table, ...)
│   └── ConstraintViolation  a load broke a constraint; rolled back; names the table and key
└── DataError
    └── SchemaDriftError     incoming columns or types do not match the table (names them)
```

Every message is passed through :func:`bubbles._secrets.mask`, so a password never reaches a log,
a repr or the run history, even when a driver quotes it.
"""

from __future__ import annotations

from typing import Any

from ..._context import current_task
from ..._errors import BubblesError, DataError
from ..._secrets import mask

__all__ = ["ConnectionFailed", "ConstraintViolation", "DatabaseError", "QueryError", "SchemaDriftError", "in_task"]


def in_task() -> str:
    """`` in task 'x'`` when called inside a running task, else ``""`` (for messages)."""
    ctx = current_task()
    return f" in task {ctx.task!r}" if ctx else ""


def _task_name() -> str | None:
    ctx = current_task()
    return ctx.task if ctx else None


class DatabaseError(BubblesError):
    """A database operation failed. Fields: ``database``, ``table``, ``query``, ``task``, ``sqlstate``."""

    transient = False

    def __init__(self, message: str = "", **fields: Any) -> None:
        fields.setdefault("task", _task_name())
        clean = {k: mask(v) if isinstance(v, str) else v for k, v in fields.items()}
        # the runner's final error says how often a task ran; this says why (not) more often
        transient = fields.get("transient", type(self).transient)
        note = (" Retried while the task has retries left: the database may answer the next time." if transient
                else " Not retried: the same statement fails the same way again.")
        super().__init__(mask(message) + note, **clean)


class ConnectionFailed(DatabaseError):
    """The server cannot be reached, or refused the login. Retried per the task's policy."""

    transient = True


class QueryError(DatabaseError):
    """The database rejected a statement; the message quotes the database's own words and the query."""


class ConstraintViolation(DatabaseError):
    """A load broke a constraint (unique key, not null, foreign key); the transaction was rolled back."""


class SchemaDriftError(DataError):
    """Incoming data does not fit the existing table (new columns under ``schema="freeze"``, or a type change)."""

    def __init__(self, message: str = "", **fields: Any) -> None:
        fields.setdefault("task", _task_name())
        super().__init__(mask(message) + " Not retried: the same data does not fit the next time either.", **fields)
