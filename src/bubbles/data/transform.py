"""``bubbles.sql``: DuckDB SQL over Arrow tables, streams, files and frames; Arrow out.

Each keyword argument becomes a table name in the query. DuckDB scans the inputs in place:
Arrow tables and pandas/polars frames without copying, record-batch streams as they flow (a
``RecordBatchReader`` can be scanned once), and Parquet/CSV/JSON paths with projection and filter
push-down. The plan is built lazily by DuckDB and runs vectorized on all cores.

With ``stream=True`` the result comes back as a ``RecordBatchReader`` produced batch by batch,
so ``read_csv(..., batch_size=...) -> sql -> write_parquet`` runs in bounded memory when the
query allows it (filters, projections, derived columns; a sort or a join builds its state first).

Inside a task (or over a lazy input) the query is planned instead: the result is a
:class:`~bubbles.data.lazy.LazyTable` whose plan is this query over its inputs' plans; it runs
where it is used, as one DuckDB statement with the reads and the write (:mod:`bubbles.data.lazy`).
The query is bound when planned, so a wrong column or table is reported by the task that wrote it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import _naming as naming
from .._context import TaskContext, current_task
from .._errors import ConfigError, DataError
from . import lineage
from .files._common import as_output, is_stream, missing_file, prefetch, pulled_for, to_arrow
from .files._fs import is_url
from .lazy import LazyTable, is_lazy, wanted

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["sql"]

_OUTPUTS = ("arrow", "pandas", "polars")
_FILE_READERS = {".parquet": "read_parquet", ".pq": "read_parquet", ".csv": "read_csv", ".tsv": "read_csv",
                 ".json": "read_json", ".ndjson": "read_json", ".jsonl": "read_json"}


def sql(query: str, *, stream: bool = False, output: str = "arrow", batch_size: int = 122_880,
        threads: int | None = None, memory_limit: str | None = None, params: Any = None, lazy: bool | None = None,
        **tables: Any) -> Any:
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
        lazy: plan the query (``True``) or run it now (``False``); default: the ``lazy`` setting
            (``auto``: plan inside tasks, or when an input is a lazy table).
        **tables: name -> ``pyarrow.Table`` / ``RecordBatchReader`` / iterable of batches / pandas or
            polars frame / path of a Parquet, CSV or JSON file or of a Parquet directory (local or URL).

    Example:
        >>> import bubbles, pyarrow as pa
        >>> orders = pa.table({"id": [1, 2, 3], "amount": [5.0, 50.0, 500.0]})
        >>> bubbles.sql("SELECT id FROM orders WHERE amount > ?", orders=orders, params=[10]).column("id").to_pylist()
        [2, 3]
    """
    if output not in _OUTPUTS:
        raise ConfigError(f"sql(output={output!r}): use one of {', '.join(_OUTPUTS)}.")
    if lazy is not False and _plannable(tables) and (any(is_lazy(v) for v in tables.values())
                                                     or (not stream and output == "arrow" and wanted(lazy))):
        planned = _plan(query, params, tables, threads, memory_limit)
        if planned is not None:
            if stream:
                from .lazy.engine import stream as run_stream

                reader = run_stream(planned.plan, consumer="sql(stream=True)", batch_size=batch_size, mode="stream")
                return lineage.copy_origin(prefetch(reader, depth=2), planned)
            return planned if output == "arrow" else lineage.copy_origin(as_output(planned.to_arrow(), output), planned)
    import duckdb

    from .lazy.engine import connect

    con = connect(_asked(threads, memory_limit))
    try:
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


def _asked(threads: int | None, memory_limit: str | None) -> Any:
    """A plan node carrying the per-call engine settings (for :func:`~bubbles.data.lazy.engine.connect`)."""
    from .lazy.plan import Query

    settings = {k: v for k, v in (("threads", threads), ("memory_limit", memory_limit)) if v}
    if memory_limit:
        _size(memory_limit)
    return Query("", None, {}, None, None, settings) if settings else None


def _plannable(tables: dict[str, Any]) -> bool:
    """Whether every input can be part of a plan: lazy tables, Arrow tables and batches, frames, local paths.

    Streams (a ``RecordBatchReader``, an iterable of batches, a DuckDB relation) can be scanned once:
    a query over one runs now.
    """
    import pyarrow as pa

    for value in tables.values():
        if is_lazy(value) or isinstance(value, pa.Table | pa.RecordBatch):
            continue
        if isinstance(value, str | os.PathLike) and not is_url(os.fspath(value)):
            continue
        module = type(value).__module__ or ""
        if (module.startswith("pandas") and hasattr(value, "columns")) or (module.startswith("polars") and
                                                                           type(value).__name__ == "DataFrame"):
            continue
        return False
    return True


def _plan(query: str, params: Any, tables: dict[str, Any], threads: int | None, memory_limit: str | None) -> Any:
    """The query's plan as a lazy table, or ``None`` when it must run now (it cannot be written as one statement)."""
    import duckdb

    from .lazy.engine import plan_schema
    from .lazy.plan import ArrowLeaf, Query, Uncomposable

    ctx = current_task()
    who = ctx.task if ctx is not None else None
    inputs: dict[str, Any] = {}
    for name, value in tables.items():
        if is_lazy(value):
            inputs[name] = value.node_for_plan()
        elif isinstance(value, str | os.PathLike):
            inputs[name] = _path_leaf(name, os.fspath(value), who)
        else:
            inputs[name] = ArrowLeaf(to_arrow(value, what=f"sql() table {name!r}"), who)  # type: ignore[arg-type]
    settings = {k: v for k, v in (("threads", threads), ("memory_limit", memory_limit)) if v}
    node = Query(query, params, inputs, None, who, settings)
    try:
        node.schema = plan_schema(node)
    except Uncomposable:
        return None
    except duckdb.Error as exc:
        if _binds_alone(query, params, inputs):
            return None  # the query is fine on its own but not as part of one statement: it runs now
        raise _translate(exc, query, tables) from None
    lazy = LazyTable(node, inputs=tuple(v for v in tables.values() if is_lazy(v)))
    origins = _input_origins(tables)
    origin = None
    if origins is not None:
        try:
            origin = lineage.query_origin(query, "duckdb", origins, {n: list(i.schema.names) for n, i in inputs.items()},
                                          node.schema.names)
        except Exception as exc:  # lineage is a record of the work, never a reason for it to fail
            import logging

            logging.getLogger("bubbles").debug("bubbles: no column lineage for a sql() query: %r", exc)
    return lineage.remember(lazy, origin)


def _path_leaf(name: str, text: str, who: str | None) -> Any:
    import duckdb

    from .lazy.plan import PathLeaf

    path = Path(text)
    if not path.exists():
        raise missing_file(f"sql(): table {name!r} is the path", text)
    con = duckdb.connect()
    try:
        relation = PathLeaf.relation_of(con, text)
        if relation is None:
            raise ConfigError(f"sql(): table {name!r} is {text}; only .parquet, .csv and .json files (or a Parquet "
                              "directory) are read by path. Read it with a bubbles reader and pass the table.")
        schema = relation.limit(0).to_arrow_table().schema
    finally:
        con.close()
    return PathLeaf(str(path), schema, who)


def _binds_alone(query: str, params: Any, inputs: dict[str, Any]) -> bool:
    """Whether ``query`` binds over empty tables of its inputs' schemas (so that only composing it failed)."""
    import duckdb

    con = duckdb.connect()
    try:
        for name, node in inputs.items():
            con.register(name, node.schema.empty_table())
        relation = con.sql(query, params=params) if params is not None else con.sql(query)
        if relation is not None:
            relation.limit(0).to_arrow_table()
        return True
    except duckdb.Error:
        return False
    finally:
        con.close()


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


def _register(con: Any, name: str, value: Any, sink: _Sink) -> None:
    if is_lazy(value):  # a query that cannot be planned (a stream beside it): the lazy input is read for it
        con.register(name, value.to_arrow())
        return
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
        data = pulled_for(data, lambda: sink.ctx)
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
    con.register(name, pulled_for(data, lambda: sink.ctx) if is_stream(data) else data)


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

