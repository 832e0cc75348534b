"""Shared pieces of the file connectors: the bad-line error, metrics, and turning inputs into Arrow.

Inputs accepted wherever the data plane takes data: ``pyarrow.Table``, ``RecordBatch``,
``RecordBatchReader``, an iterable of record batches, pandas and polars frames (polars
``LazyFrame`` too), DuckDB relations, lists of dicts, and lazy tables (their plan streams out of
DuckDB; a writer taking one is wrapped in :func:`~bubbles.data.lazy.engine.restartable`). pandas/polars convert through Arrow
without copying where the libraries allow (polars shares its buffers; pandas copies only
object columns).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..._context import TaskContext, _current, current_task, log_metric
from ..._errors import ConfigError, DataError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "NOT_RETRIED",
    "BadLineError",
    "MissingFileError",
    "WrittenFile",
    "as_output",
    "count_read",
    "count_written",
    "is_stream",
    "prefetch",
    "schema_of",
    "to_arrow",
    "to_reader",
    "to_table",
]

ON_BAD_LINES = ("error", "quarantine", "skip")


class BadLineError(DataError):
    """A line of an input file cannot be read as declared.

    Fields: ``source`` (the file), ``line`` (1-based physical line, when known), ``column``
    (name or number, when the problem is one value), ``raw`` (the offending text), ``reason``.
    """


class MissingFileError(DataError):
    """An input file is not there. Transient: a file another job produces may appear later, so the
    runner tries again while the task has retries left."""

    transient = True


NOT_RETRIED = "Not retried: reading the same input again gives the same error."


def missing_file(kind: str, where: object) -> MissingFileError:
    return MissingFileError(
        f"{kind} {where} does not exist. Check the path; if another job produces the file, it may not be there yet: "
        "this error is retried while the task has retries left (give the task retries= and retry_delay=).",
        source=str(where),
    )


@dataclass(frozen=True, slots=True)
class WrittenFile:
    """One file a writer produced: where, how many rows, how many bytes on disk, and its columns.

    It is path-like (``os.fspath(f) == f.path``), so a reader takes it where it takes a path.
    ``schema`` lists ``{"name": ..., "type": ...}`` per column as written (CSV: the output names,
    with the Arrow type each was written from); :func:`bubbles.deliver` puts it in the manifest.
    """

    path: str
    rows: int
    bytes: int
    schema: tuple[tuple[str, str], ...] | None = None

    def __fspath__(self) -> str:
        """A written file is a path: ``read_csv(write_csv(table, "out.csv")[0])`` reads it back."""
        return self.path


def schema_of(schema: pa.Schema, names: list[str] | None = None) -> tuple[tuple[str, str], ...]:
    """A compact, hashable description of ``schema`` (optionally under other column names)."""
    out_names = names if names is not None else schema.names
    return tuple((str(n), str(f.type)) for n, f in zip(out_names, schema, strict=True))


def check_on_bad_lines(value: str) -> str:
    if value not in ON_BAD_LINES:
        raise ConfigError(f"on_bad_lines={value!r} is not one of {', '.join(ON_BAD_LINES)}. Pick one of them.")
    return value


def count_read(rows: int, nbytes: int | None = None, *, files: Iterable[Any] = ()) -> None:
    """Feed rows and bytes read into the running task's metrics; a no-op outside a task.

    ``bytes_read`` is the size on disk of the local ``files`` read (a :class:`Location` or a path),
    as the lazy path and the lineage records count it; ``nbytes`` (the data's Arrow size) where
    that is unknown: a remote file, a stream.
    """
    log_metric("rows_read", rows, add=True)
    sizes = [size_on_disk(f) for f in files]
    if sizes and all(s is not None for s in sizes):
        nbytes = sum(s for s in sizes if s is not None)
    if nbytes is not None:
        log_metric("bytes_read", nbytes, add=True)


def size_on_disk(loc: Any) -> int | None:
    """The bytes of a local file (a :class:`Location` or a path); ``None`` for a directory, a remote or missing file."""
    if isinstance(loc, str | os.PathLike):
        path = os.fspath(loc)
    elif getattr(loc, "is_local", False):
        path = loc.path
    else:
        return None
    try:
        return os.path.getsize(path) if os.path.isfile(path) else None
    except OSError:
        return None


def pulled_for(reader: pa.RecordBatchReader, owner: Callable[[], TaskContext | None],
               on_end: Callable[[], Any] | None = None) -> pa.RecordBatchReader:
    """``reader``'s batches, each pulled as if by the task ``owner()`` names at that moment: DuckDB pulls
    a registered stream on threads of its own, where no task is current, and the rows read there are the
    consuming task's (which may change: a planned query's result is pulled by the next task).
    ``on_end`` runs once the stream is done with (read to its end, failed or dropped)."""
    import pyarrow as pa

    def batches() -> Iterator[pa.RecordBatch]:
        it = iter(reader)
        try:
            while True:
                ctx = owner() if current_task() is None else None
                token = _current.set(ctx) if ctx is not None else None
                try:
                    batch = next(it, None)
                finally:
                    if token is not None:
                        _current.reset(token)
                if batch is None:
                    return
                yield batch
        finally:
            if on_end is not None:
                on_end()

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


def count_written(files: Iterable[WrittenFile]) -> None:
    for f in files:
        log_metric("rows_written", f.rows, add=True)
        log_metric("bytes_written", f.bytes, add=True)
        log_metric("files_written", 1, add=True)


def is_stream(obj: Any) -> bool:
    import pyarrow as pa

    return isinstance(obj, pa.RecordBatchReader)


def to_arrow(obj: Any, *, what: str = "data") -> pa.Table | pa.RecordBatchReader:
    """``obj`` as an Arrow table, or as a ``RecordBatchReader`` when it is a stream."""
    import pyarrow as pa

    if isinstance(obj, pa.Table | pa.RecordBatchReader):
        return obj
    if getattr(type(obj), "__bubbles_lazy__", False):  # a lazy table: its plan streams (in a writer, see lazy.engine)
        if obj.is_read:
            return obj.to_arrow()  # type: ignore[no-any-return]
        from ..lazy.engine import stream

        return stream(obj.plan, consumer=what.removesuffix(" data"))
    if isinstance(obj, pa.RecordBatch):
        return pa.Table.from_batches([obj])
    module = type(obj).__module__ or ""
    if module.startswith("pandas"):
        return pa.Table.from_pandas(obj, preserve_index=False)
    if module.startswith("polars"):
        if hasattr(obj, "collect"):  # LazyFrame
            obj = obj.collect()
        if hasattr(obj, "to_arrow"):
            return obj.to_arrow()
    if module.startswith("duckdb"):
        if hasattr(obj, "to_arrow_reader"):  # DuckDB >= 1.4 (fetch_record_batch is deprecated there)
            return obj.to_arrow_reader()
        if hasattr(obj, "fetch_record_batch"):
            return obj.fetch_record_batch()
        return obj.arrow()
    if hasattr(obj, "__arrow_c_stream__"):
        return pa.RecordBatchReader.from_stream(obj)
    if isinstance(obj, list) and (not obj or isinstance(obj[0], dict)):
        return pa.Table.from_pylist(obj)
    if isinstance(obj, Iterator | Iterable) and not isinstance(obj, str | bytes | dict):
        it = iter(obj)
        first = next(it, None)
        if first is None:
            raise DataError(f"{what}: the stream of record batches is empty, so it has no schema. Pass a pyarrow.Table "
                            "or a RecordBatchReader (which carries its schema) instead.")
        if isinstance(first, pa.RecordBatch):
            return pa.RecordBatchReader.from_batches(first.schema, _chain(first, it))
    raise ConfigError(
        f"{what}: cannot use a {type(obj).__name__} as tabular data. Pass a pyarrow Table or RecordBatchReader, "
        "a pandas or polars DataFrame, an iterable of RecordBatches, or a list of dicts."
    )


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


OUTPUTS = ("arrow", "pandas", "polars")


def as_output(table: pa.Table, output: str) -> Any:
    """``table`` as asked: Arrow (default), or a pandas / polars frame (polars shares Arrow's buffers)."""
    if output == "arrow":
        return table
    if output == "pandas":
        return table.to_pandas()
    if output == "polars":
        import polars as pl

        return pl.from_arrow(table)
    raise ConfigError(f"output={output!r}: use one of {', '.join(OUTPUTS)}.")


def to_table(obj: Any, *, what: str = "data") -> pa.Table:
    data = to_arrow(obj, what=what)
    return data.read_all() if is_stream(data) else data  # type: ignore[union-attr,return-value]


def to_reader(obj: Any, *, what: str = "data") -> pa.RecordBatchReader:
    import pyarrow as pa

    data = to_arrow(obj, what=what)
    if isinstance(data, pa.Table):
        return pa.RecordBatchReader.from_batches(data.schema, data.to_batches())
    return data


def counted(reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
    """The same stream, counting rows and bytes into the consuming task's metrics as it flows."""
    import pyarrow as pa

    def gen() -> Iterator[pa.RecordBatch]:
        for batch in reader:
            count_read(batch.num_rows, batch.nbytes)
            yield batch

    return pa.RecordBatchReader.from_batches(reader.schema, gen())


def prefetch(reader: pa.RecordBatchReader, depth: int = 4) -> pa.RecordBatchReader:
    """The same stream, produced ``depth`` batches ahead on a background thread.

    Pulling a stream runs every stage behind it (parse, query, ...) in the puller's thread, one
    after the other, while the consumer (a Parquet writer, say) waits. Arrow and DuckDB release
    the GIL while they work, so producing the next batches on another thread lets the stages
    overlap on several cores. Memory stays bounded by ``depth`` batches. The producer runs in a
    copy of the context of the first pull; count rows on the consumer side (:func:`counted`) so
    they land in the task that consumes them.
    """
    import contextvars
    import queue
    import threading

    import pyarrow as pa

    done = object()

    def batches() -> Iterator[pa.RecordBatch]:
        q: queue.Queue[Any] = queue.Queue(maxsize=depth)
        stop = threading.Event()

        def produce() -> None:
            try:
                for batch in reader:
                    while not stop.is_set():
                        try:
                            q.put(batch, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                q.put(done)
            except BaseException as exc:  # handed to the consumer, raised there
                q.put(exc)

        context = contextvars.copy_context()
        thread = threading.Thread(target=context.run, args=(produce,), name="bubbles-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                item = q.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()  # the producer stops at its next batch; a source stuck mid-batch is left to finish alone
            thread.join(timeout=10)

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


def quote_ident(name: str) -> str:
    """A DuckDB identifier, quoted and validated by the one function that does it for every database."""
    from ..db.base import quote_ident as quote

    return quote(name)


def sql_string(text: str) -> str:
    """A string literal for the option clauses of DuckDB's COPY, which take no bound parameters."""
    return "'" + str(text).replace("'", "''") + "'"
