"""``bubbles.sql``: DuckDB SQL over Arrow tables, streams, files and frames; Arrow out.

Each keyword argument becomes a table name in the query. DuckDB scans the inputs in place:
Arrow tables and pandas/polars frames without copying, record-batch streams as they flow (a
``RecordBatchReader`` can be scanned once), and Parquet/CSV/JSON paths with projection and filter
push-down. The plan is built lazily by DuckDB and runs vectorized on all cores.

With ``stream=True`` the result comes back as a ``RecordBatchReader`` produced batch by batch,
so ``read_csv(..., batch_size=...) -> sql -> write_parquet`` runs in bounded memory when the
query allows it (filters, projections, derived columns; a sort or a join builds its state first).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import _naming as naming
from .._context import TaskContext, _current, current_task
from .._errors import ConfigError, DataError
from . import lineage
from .files._common import as_output, is_stream, missing_file, prefetch, to_arrow
from .files._fs import is_url

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["sql"]

_OUTPUTS = ("arrow", "pandas", "polars")
_FILE_READERS = {".parquet": "read_parquet", ".pq": "read_parquet", ".csv": "read_csv", ".tsv": "read_csv",
                 ".json": "read_json", ".ndjson": "read_json", ".jsonl": "read_json"}


def sql(query: str, *, stream: bool = False, output: str = "arrow", batch_size: int = 122_880,
        threads: int | None = None, memory_limit: str | None = None, params: Any = None, **tables: Any) -> Any:
    """Run a DuckDB SQL query over the given tables and return the result as Arrow.

    Args:
        query: the SQL; the names of ``tables`` are its tables. Values belong in ``params``
            (``?`` or ``$name`` placeholders), never formatted into the text.
        stream: return a ``pyarrow.RecordBatchReader`` that computes batches as they are read.
        output: ``"arrow"`` (default), ``"pandas"`` or ``"polars"`` for a frame (ignored when streaming).
        batch_size: rows per batch of a streamed result.
        threads, memory_limit: DuckDB settings for this query (e.g. ``memory_limit="300MB"``,
            which makes sorts and joins spill to disk instead of growing).
        params: bound parameters of the query.
        **tables: name -> ``pyarrow.Table`` / ``RecordBatchReader`` / iterable of batches / pandas or
            polars frame / path of a Parquet, CSV or JSON file or of a Parquet directory (local or URL).

    Example:
        >>> import bubbles, pyarrow as pa
        >>> orders = pa.table({"id": [1, 2, 3], "amount": [5.0, 50.0, 500.0]})
        >>> bubbles.sql("SELECT id FROM orders WHERE amount > ?", orders=orders, params=[10]).column("id").to_pylist()
        [2, 3]
    """
    import duckdb

    if output not in _OUTPUTS:
        raise ConfigError(f"sql(output={output!r}): use one of {', '.join(_OUTPUTS)}.")
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        if memory_limit:
            con.execute(f"SET memory_limit = '{_size(memory_limit)}'")
        sink = _Sink(current_task())
        inputs = _input_origins(tables)  # before registering: a stream's origin is the object given
        for name, value in tables.items():
            _register(con, name, value, sink)
        try:
            relation = con.sql(query, params=params) if params is not None else con.sql(query)
        except duckdb.Error as exc:
            raise _translate(exc, query, tables) from None
        if relation is None:
            raise ConfigError("sql() runs queries that return rows (SELECT ...); use DuckDB directly for statements.")
        origin = _result_origin(con, query, tables, inputs, relation.columns)
        if stream:
            reader = relation.to_arrow_reader(batch_size)
            return lineage.remember(prefetch(_owning_reader(reader, con, sink), depth=2), origin)
        try:
            table = relation.to_arrow_table()
        except duckdb.Error as exc:
            raise _translate(exc, query, tables) from None
    except BaseException:
        con.close()
        raise
    con.close()
    return lineage.remember(as_output(table, output), origin)


def _input_origins(tables: dict[str, Any]) -> dict[str, lineage.Origin | None] | None:
    """Where each input came from (``None`` when lineage is not recorded); a path input is read here."""
    if lineage.active() is None:
        return None
    out: dict[str, lineage.Origin | None] = {}
    for name, value in tables.items():
        if isinstance(value, str | os.PathLike) and not is_url(os.fspath(value)):
            suffix = Path(value).suffix.lstrip(".") or "parquet"  # a directory is a Parquet dataset
            namespace, dataset = naming.file_dataset(value)
            lineage.read(None, namespace, dataset, kind="file", format=_FORMATS.get(suffix, suffix))
            out[name] = lineage.dataset_origin(namespace, dataset)
        else:
            out[name] = lineage.origin_of(value)  # a URL is read by a bubbles reader, which records it
    return out


_FORMATS = {"pq": "parquet", "tsv": "csv", "ndjson": "json", "jsonl": "json"}


def _result_origin(con: Any, query: str, tables: dict[str, Any], inputs: dict[str, lineage.Origin | None] | None,
                   output: list[str]) -> lineage.Origin | None:
    """The result's origin: the query's column lineage over its inputs' origins (never fails the query)."""
    if inputs is None:
        return None
    try:
        schemas = {name: list(con.table(name).columns) for name in tables}
        return lineage.query_origin(query, "duckdb", inputs, schemas, output)
    except Exception as exc:  # lineage is a record of the work, never a reason for it to fail
        import logging

        logging.getLogger("bubbles").debug("bubbles: no column lineage for a sql() query: %r", exc)
        return None


def _size(text: str) -> str:
    cleaned = str(text).strip().replace(" ", "")
    if not cleaned or not all(c.isalnum() or c == "." for c in cleaned):
        raise ConfigError(f"memory_limit={text!r}: use a size such as '300MB' or '2GB'.")
    return cleaned


class _Sink:
    """The task that consumes the query's result: DuckDB pulls input streams on its own threads, where
    no task context is set, so the rows read there are attributed to this task."""

    __slots__ = ("ctx",)

    def __init__(self, ctx: TaskContext | None) -> None:
        self.ctx = ctx


def _attributed(reader: pa.RecordBatchReader, sink: _Sink) -> pa.RecordBatchReader:
    import pyarrow as pa

    def batches() -> Iterator[pa.RecordBatch]:
        it = iter(reader)
        while True:
            token = _current.set(sink.ctx) if sink.ctx is not None and current_task() is None else None
            try:
                batch = next(it, None)
            finally:
                if token is not None:
                    _current.reset(token)
            if batch is None:
                return
            yield batch

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


def _register(con: Any, name: str, value: Any, sink: _Sink) -> None:
    if isinstance(value, str | os.PathLike):
        text = os.fspath(value)
        if is_url(text):
            _register_url(con, name, text, sink)
            return
        path = Path(text)
        if not path.exists():
            raise missing_file(f"sql(): table {name!r} is the path", text)
        suffix = "".join(s for s in path.suffixes if s in _FILE_READERS) or path.suffix
        reader = "read_parquet" if path.is_dir() else _FILE_READERS.get(suffix)
        if reader is None:
            raise ConfigError(f"sql(): table {name!r} is {text}; only .parquet, .csv and .json files (or a Parquet "
                              "directory) are read by path. Read it with a bubbles reader and pass the table.")
        source = str(path / "**" / "*.parquet") if path.is_dir() else str(path)
        if reader == "read_parquet":
            relation = con.read_parquet(source, hive_partitioning=path.is_dir())
        else:
            relation = getattr(con, reader)(source)
        relation.create_view(name)
        return
    data = to_arrow(value, what=f"sql() table {name!r}")
    if is_stream(data):
        data = _attributed(data, sink)
    con.register(name, data)


def _register_url(con: Any, name: str, url: str, sink: _Sink) -> None:
    """Object storage goes through the bubbles readers (fsspec), streamed into DuckDB."""
    from .files.csv import read_csv
    from .files.json import read_json
    from .files.parquet import read_parquet

    lower = url.lower()
    if ".csv" in lower:
        data = read_csv(url, batch_size=65_536)
    elif ".json" in lower:
        data = read_json(url)
    else:
        data = read_parquet(url, batch_size=65_536)
    con.register(name, _attributed(data, sink) if is_stream(data) else data)


def _owning_reader(reader: pa.RecordBatchReader, con: Any, sink: _Sink) -> pa.RecordBatchReader:
    """A reader that keeps the DuckDB connection alive until it is exhausted, then closes it."""
    import pyarrow as pa

    def batches() -> Iterator[pa.RecordBatch]:
        sink.ctx = current_task()  # whoever pulls the result is the task doing the work
        try:
            yield from reader
        finally:
            con.close()

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


def _translate(exc: BaseException, query: str, tables: dict[str, Any]) -> ConfigError | DataError:
    text = str(exc).strip()
    names = ", ".join(sorted(tables)) or "none"
    hint = "Check the query."
    if "does not exist" in text and "Table" in text:
        hint = f"The tables given are: {names}; pass each table the query names as a keyword argument."
    elif "not found in FROM clause" in text or "Referenced column" in text:
        hint = "Check the column names (DuckDB folds unquoted names; quote mixed-case ones)."
    elif "Conversion Error" in text or "Could not convert" in text:
        return DataError(f"sql(): a value does not convert: {text}. Use TRY_CAST, or clean the input first.",
                         query=query)
    return ConfigError(f"sql() failed: {text}. {hint}", query=query, tables=sorted(tables))

