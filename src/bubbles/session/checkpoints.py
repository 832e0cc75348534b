"""Checkpoints: a task's output kept where a later run can find it, and read back where it is used.

A :class:`CheckpointTarget` travels with a task's call (it pickles: processes and Dask workers
get it too) and, once the task succeeded, stores the output **where the task ran**, so nothing
crosses processes twice:

* Arrow tables and record batches — and pandas and polars frames, through Arrow — as Arrow IPC
  files (read back memory-mapped: a 1 GB table costs a few milliseconds to "load");
* ``None`` and small JSON values inline in the ``checkpoints`` row of the run store;
* a lazy table whose plan reads only files it can check (``__bubbles_keep__``, see
  :mod:`bubbles._deferred`) as its plan alone (``format = "plan"``: a small pickle of the plan
  and the identity of each file it reads; its fingerprint is of the plan and the files' content
  hashes). A resumed run reuses it only if every file is still as it was; it reads the files
  where the plan is used, as the first run would have;
* any other Python object as a pickle.

An inline value or pickle that holds one of the run's secrets (a connection, a token) is not
kept, with a warning, and a resumed run reruns its task: the store would mask it (a resume would
read asterisks) and a pickle would carry it to disk. Arrow data is not scanned for secrets: it is
data, kept as the task's own outputs are. A stream of record batches is not kept either (keeping
it would consume it).

Files are created ``0600`` under ``checkpoint_dir`` (default: ``checkpoints`` in the bubbles home),
one folder per run, written aside and renamed. A :class:`CheckpointRef` is how a reused output
travels: a small object the worker (or the run, for a final output) loads when the value is
needed. A checkpoint that is missing or corrupt is never trusted: the task runs again (with a
warning that says so).

On Dask, workers on other machines write and read ``checkpoint_dir`` too: point it at storage
they share (a network file system). With the default local folder, a resumed run only reuses
checkpoints written on the machine that resumes it, and says so for the others.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import socket
import tempfile
from pathlib import Path
from typing import Any

from .._events import Checkpoint
from .._kept import facts_of, remember_loaded
from .fingerprint import fingerprint_value

__all__ = ["CheckpointError", "CheckpointRef", "CheckpointTarget"]

_FACT = b"bubbles.fact."  # metadata keys of what bubbles._kept savers knew about the value

log = logging.getLogger("bubbles")
_INLINE_BYTES = 4096
_SAFE = re.compile(r"[^A-Za-z0-9_.\-\[\]]")
_HOST = socket.gethostname()


class CheckpointError(Exception):
    """A checkpoint cannot be read (missing, damaged, written elsewhere): the task must run again."""


def _file_name(task: str) -> str:
    return _SAFE.sub("_", task)[:180]


def _kind_of(value: Any) -> str | None:
    """How ``value`` is kept: ``arrow``, ``arrow-pandas``, ``arrow-polars``, ``none``, ``json``, ``pickle``; None: not kept."""
    if value is None:
        return "none"
    keep = getattr(value, "__bubbles_keep__", None)
    if keep is not None:
        return "plan" if keep() is not None else None  # (a plan that cannot be kept is computed before, in its task)
    module = type(value).__module__ or ""
    if module.startswith("pyarrow"):
        if type(value).__name__ in ("Table", "RecordBatch"):
            return "arrow"
        return None  # a RecordBatchReader (a stream): reading it to keep it would consume it
    if module.startswith("pandas") and hasattr(value, "columns"):
        return "arrow-pandas"
    if module.startswith("polars") and type(value).__name__ == "DataFrame":
        return "arrow-polars"
    if type(value) in (bool, int, float, str, list, dict) and _inline(value) is not None:
        return "json"
    if hasattr(value, "__iter__") and hasattr(value, "__next__"):
        return None  # a generator or iterator: one pass only
    return "pickle"


def _inline(value: Any) -> str | None:
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return None
    if len(text) > _INLINE_BYTES or json.loads(text) != value:  # (tuples, non-str keys would change)
        return None
    return text


class _Hashing:
    """A binary file that hashes (xxh3-128) what is written through it."""

    def __init__(self, fh: Any) -> None:
        import xxhash

        self.fh = fh
        self.hash = xxhash.xxh3_128()
        self.closed = False

    def write(self, data: Any) -> int:
        self.hash.update(data)
        return int(self.fh.write(data))

    def tell(self) -> int:
        return int(self.fh.tell())

    def flush(self) -> None:
        self.fh.flush()

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True  # (the real file is closed by its owner)


def _secure_write(path: Path, write: Any) -> tuple[int, str]:
    """Write through ``write(binary file)`` to a ``0600`` file beside ``path``, then rename it into place.

    Returns the file's size and content hash (``xxh3:...``, checked before the file is reused).
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # mkstemp creates 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            hashing = _Hashing(fh)
            write(hashing)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path.stat().st_size, f"xxh3:{hashing.hash.hexdigest()}"


def _file_hash(path: Path) -> str:
    import xxhash

    h = xxhash.xxh3_128()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return f"xxh3:{h.hexdigest()}"


class CheckpointTarget:
    """Where and under which key a task's output is kept (see the module docstring). Picklable."""

    __slots__ = ("code", "directory", "expires_at", "inputs", "keep", "key", "params")

    def __init__(
        self,
        directory: str,
        key: str,
        *,
        code: str | None,
        params: str | None,
        inputs: dict[str, str | None],
        expires_at: float | None = None,
        keep: bool = True,
    ) -> None:
        self.directory = directory
        self.key = key
        self.keep = keep  # False: only the output's fingerprint is noted (what downstream keys are made of)
        self.code = code
        self.params = params
        self.inputs = inputs
        self.expires_at = expires_at

    def __getstate__(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            setattr(self, name, value)

    def store(self, attempt: Any, ctx: Any) -> None:
        """Keep ``attempt.value`` (called where the task ran, after it succeeded); adds a Checkpoint event."""
        value = attempt.value
        fingerprint = fingerprint_value(value)
        if not self.keep:
            return self._record(attempt, ctx, fingerprint, kept=False)
        kind = _kind_of(value)
        event: dict[str, Any] = {"format": "none", "location": None, "value": None, "bytes": None, "content_hash": None}
        if kind is None:
            log.info("bubbles: the output of task %r (a %s) is not kept for resume", attempt.task, type(value).__name__)
            return self._record(attempt, ctx, fingerprint, kept=False)
        registry = getattr(ctx, "secrets", None)
        if kind == "json":
            text = _inline(value) or ""
            if registry and registry.mask(text) != text:  # the store would mask it: a resume would get asterisks
                return self._not_kept_secret(attempt, ctx, fingerprint)
            event.update(format="json", value=text)
        elif kind != "none":
            path = (
                Path(self.directory)
                / attempt.run_id
                / f"{_file_name(attempt.task)}.{'arrow' if kind.startswith('arrow') else kind}"
            )
            if kind in ("pickle", "plan"):
                data = _pickle(value.__bubbles_keep__() if kind == "plan" else value)
                if registry and registry.mask(data.decode("latin-1")) != data.decode("latin-1"):
                    return self._not_kept_secret(attempt, ctx, fingerprint)
                size, digest = _secure_write(path, lambda fh: fh.write(data))
            else:
                size, digest = _secure_write(path, lambda fh: _write_arrow(fh, value, kind))
            event.update(format=kind, location=f"{_HOST}:{path}", bytes=size, content_hash=digest)
        attempt.events = [
            *(attempt.events or ()),
            Checkpoint(
                key=self.key,
                code=self.code,
                params=self.params,
                inputs=json.dumps(self.inputs, sort_keys=True),
                fingerprint=fingerprint,
                expires_at=self.expires_at,
                **event,
            ),
        ]
        return None

    def _not_kept_secret(self, attempt: Any, ctx: Any, fingerprint: str | None) -> None:
        log.warning(
            "bubbles: the output of task %r holds one of the run's secrets; it is not kept, and a resumed run runs "
            "the task again",
            attempt.task,
        )
        return self._record(attempt, ctx, fingerprint, kept=False)

    def _record(self, attempt: Any, ctx: Any, fingerprint: str | None, *, kept: bool) -> None:
        """An output not kept still gives its fingerprint (downstream keys are made of it)."""
        attempt.events = [
            *(attempt.events or ()),
            Checkpoint(key="", code=self.code, params=self.params, fingerprint=fingerprint, format="unkept"),
        ]


def _pickle(value: Any) -> bytes:
    """``value`` pickled; with cloudpickle when it holds classes of a script (no later process could import them)."""
    try:
        return pickle.dumps(value, protocol=5)
    except (pickle.PicklingError, AttributeError, TypeError):
        import cloudpickle

        return bytes(cloudpickle.dumps(value, protocol=5))


def _write_arrow(fh: Any, value: Any, kind: str) -> None:
    import pyarrow as pa

    if kind == "arrow-pandas":
        table = pa.Table.from_pandas(value, preserve_index=True)
    elif kind == "arrow-polars":
        table = value.to_arrow()
    elif isinstance(value, pa.RecordBatch):
        table = pa.Table.from_batches([value])
    else:
        table = value
    meta = {
        **(table.schema.metadata or {}),
        b"bubbles.kind": kind.encode(),
        b"bubbles.batch": b"1" if isinstance(value, pa.RecordBatch) else b"0",
        **{_FACT + name.encode(): text.encode() for name, text in facts_of(value).items()},
    }
    table = table.replace_schema_metadata(meta)
    with pa.ipc.new_file(fh, table.schema) as writer:
        writer.write_table(table)


class CheckpointRef:
    """A reused task output: loaded where it is used (``__bubbles_load__``). Picklable and small."""

    __slots__ = ("content_hash", "fingerprint", "format", "location", "run_id", "size", "task", "value")

    def __init__(
        self,
        run_id: str,
        task: str,
        fmt: str,
        location: str | None,
        value: str | None,
        fingerprint: str | None,
        size: int | None = None,
        content_hash: str | None = None,
    ) -> None:
        self.run_id = run_id
        self.task = task
        self.format = fmt
        self.location = location
        self.value = value
        self.fingerprint = fingerprint
        self.size = size
        self.content_hash = content_hash

    def __getstate__(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            setattr(self, name, value)

    def __repr__(self) -> str:
        return f"<checkpoint of {self.task!r} from run {self.run_id} ({self.format})>"

    @property
    def __bubbles_fingerprint__(self) -> str | None:
        return self.fingerprint

    def path(self) -> Path:
        """The file, if it is readable from here (raises :class:`CheckpointError` otherwise)."""
        if not self.location:
            raise CheckpointError(f"The checkpoint of {self.task!r} from run {self.run_id} has no file.")
        host, _, path = self.location.partition(":")
        if host != _HOST and not Path(path).exists():
            raise CheckpointError(
                f"The checkpoint of {self.task!r} from run {self.run_id} was written on {host}, and {path} is not "
                "readable here. Point checkpoint_dir at storage every machine shares."
            )
        return Path(path)

    def check(self) -> None:
        """Raise :class:`CheckpointError` unless the checkpoint can be read: there, whole, and (Arrow) with its footer."""
        if self.format in ("none", "json"):
            return
        path = self.path()
        if not path.is_file():
            raise CheckpointError(f"The checkpoint of {self.task!r} from run {self.run_id} is gone ({path}).")
        if self.size is not None and path.stat().st_size != self.size:
            raise CheckpointError(
                f"The checkpoint of {self.task!r} from run {self.run_id} is damaged ({path} has "
                f"{path.stat().st_size:,} bytes, {self.size:,} were written)."
            )
        if self.content_hash and _file_hash(path) != self.content_hash:  # same size, other bytes: never trusted
            raise CheckpointError(
                f"The checkpoint of {self.task!r} from run {self.run_id} is damaged ({path} is not what was written: "
                "its content hash differs)."
            )
        if self.format.startswith("arrow"):
            import pyarrow as pa

            try:
                pa.ipc.open_file(pa.memory_map(str(path))).schema  # noqa: B018 (reads the footer)
            except Exception as exc:
                raise CheckpointError(f"The checkpoint of {self.task!r} from run {self.run_id} is damaged ({exc}).") from exc
        if self.format == "plan":  # a kept plan is good only while every file it reads is as it was
            try:
                plan = pickle.loads(path.read_bytes())
            except Exception as exc:
                raise CheckpointError(f"The checkpoint of {self.task!r} from run {self.run_id} is damaged ({exc}).") from exc
            try:
                plan.__bubbles_check__()  # size, modification time, inode
                now = fingerprint_value(plan)  # (of the content hash of every file it reads, computed anew)
            except Exception as exc:
                raise CheckpointError(
                    f"The kept plan of {self.task!r} from run {self.run_id} reads a file that changed since: {exc}"
                ) from exc
            if self.fingerprint is not None and now != self.fingerprint:
                raise CheckpointError(
                    f"The kept plan of {self.task!r} from run {self.run_id} reads a file whose content changed since "
                    "(same size and modification time, other bytes)."
                )

    def __bubbles_load__(self) -> Any:
        if self.format == "none":
            return None
        if self.format == "json":
            return json.loads(self.value or "null")
        path = self.path()
        try:
            if self.format in ("pickle", "plan"):
                return pickle.loads(path.read_bytes())
            return _read_arrow(path, self.format)
        except Exception as exc:
            raise CheckpointError(
                f"The checkpoint of {self.task!r} from run {self.run_id} cannot be read ({type(exc).__name__}: {exc})."
            ) from exc


def _read_arrow(path: Path, kind: str) -> Any:
    import pyarrow as pa

    reader = pa.ipc.open_file(pa.memory_map(str(path)))
    table = reader.read_all()
    meta = dict(table.schema.metadata or {})
    batch = meta.pop(b"bubbles.batch", b"0") == b"1"
    meta.pop(b"bubbles.kind", None)
    facts = {k[len(_FACT):].decode(): meta.pop(k).decode() for k in list(meta) if k.startswith(_FACT)}
    table = table.replace_schema_metadata(meta or None)
    if kind == "arrow-pandas":
        return table.to_pandas()
    if kind == "arrow-polars":
        import polars as pl

        return pl.from_arrow(table)
    value = table.combine_chunks().to_batches()[0] if batch else table
    remember_loaded(value, facts)  # e.g. where its rows came from (lineage)
    return value
