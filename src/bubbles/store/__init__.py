"""The run store: runs, attempts, events, logs, datasets and watermarks in plain SQL tables.

One interface (:class:`RunStore`), two backends: SQLite in the bubbles home (the default,
``history.db``) and PostgreSQL (the ``store`` setting, a ``postgresql://`` URL) for runs on many
machines. Anyone can read the tables while runs write them (the schema and example queries:
``docs/store.md``); :mod:`bubbles.store.schema` documents every column.

The store is a leaf of the package: the run session records runs in it (through the observer
``bubbles.observe.history.RunRecorder``), the data layer keeps incremental watermarks in it, and
the CLI reads it. Example::

    from bubbles.store import open_store
    with open_store() as store:
        failed = store.query("SELECT task FROM attempts WHERE run_id = ? AND state = 'failed'", [run_id])
"""

from __future__ import annotations

import atexit
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from .base import Batch, RunStore, StoreError, empty_batch

if TYPE_CHECKING:
    from .._settings import Settings

__all__ = [
    "Batch",
    "RunStore",
    "StoreError",
    "drop_shared_store",
    "empty_batch",
    "open_store",
    "parked_folder",
    "shared_store",
    "store_location",
]


def store_location(settings: Settings | None = None) -> str:
    """Where the store is: the ``store`` setting, else ``history.db`` in the bubbles home."""
    from .._settings import current_settings

    settings = settings if settings is not None else current_settings()
    return settings.store or str(settings.home_path() / "history.db")


def open_store(
    location: str | os.PathLike[str] | None = None,
    *,
    settings: Settings | None = None,
    create: bool = True,
    timeout: float | None = None,
) -> RunStore:
    """Open the run store at ``location`` (a path or a ``postgresql://`` URL; default from the settings).

    Raises:
        StoreError: the store cannot be opened (locked, corrupt, newer, unreachable, missing with
            ``create=False``); the message says what to do.
    """
    from .._settings import current_settings

    settings = settings if settings is not None else current_settings()
    where = str(location) if location is not None else store_location(settings)
    wait = timeout if timeout is not None else settings.history_timeout
    if where.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        store: RunStore = PostgresStore(where, timeout=wait)
    else:
        from .sqlite import SQLiteStore

        store = SQLiteStore(where, timeout=wait, create=create)
    return store.open()


# One open store per location and process, shared by the recorders of concurrent runs: opening a
# database (and migrating it) costs milliseconds; a connection is used under the store's lock.
_shared: dict[tuple[int, str], RunStore] = {}
_shared_lock = threading.Lock()


def shared_store(location: str, *, timeout: float = 30.0) -> RunStore:
    """The process's open store at ``location`` (opened on first use, closed when the interpreter exits)."""
    key = (os.getpid(), location)
    with _shared_lock:
        store = _shared.get(key)
        if store is None:
            if not _shared:
                atexit.register(_close_shared)
            store = _shared[key] = open_store(location, timeout=timeout)
        return store


def _close_shared() -> None:
    with _shared_lock:
        stores = list(_shared.values())
        _shared.clear()
    for store in stores:
        try:
            store.close()
        except Exception:  # closing at exit: nothing left to tell
            pass


def drop_shared_store(location: str) -> None:
    """Forget (and close) the shared store at ``location``, e.g. after it failed."""
    with _shared_lock:
        store = _shared.pop((os.getpid(), location), None)
    if store is not None:
        store.close()


def parked_folder(location: str, settings: Settings | None = None) -> Path:
    """Where runs that could not be written to the store wait (``history-pending`` in the home)."""
    from .._settings import current_settings

    settings = settings if settings is not None else current_settings()
    if location.startswith(("postgresql://", "postgres://")):
        return settings.home_path() / "history-pending"
    return Path(location).parent / "history-pending"
