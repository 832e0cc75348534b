"""What the connectors record about the data they touch: datasets read and written, and where written data came from.

Every reader, writer, database read and write, API source and delivery calls one function here
as it finishes (:func:`read`, :func:`wrote`, :func:`files_written`); each records a
:class:`~bubbles._events.Dataset` on the running task attempt (named by :mod:`.naming`, with rows,
bytes, schema, and for files written a content hash), and the run store keeps them in its
``datasets`` table. Outside a task, or with the ``lineage`` setting ``off``, nothing is done (and
nothing is hashed).

**Where data came from.** A reader's result *remembers its origin*: the dataset and its columns.
``bubbles.sql`` derives the origin of its result from its inputs' origins and the query's column
lineage (:mod:`.sqllineage`); a database query's result from the tables the query reads. When a
writer writes an object whose origin is known, it records :class:`~bubbles._events.LineageEdge`
events: each output column from its input columns, and the output dataset from each input
dataset. So ``read_csv -> sql -> write_parquet`` gives column lineage from the Parquet file back
to the CSV, across tasks too when the tasks hand the objects over in one process (the serial
and threads executors). Origins are held by weak reference, keyed by object identity: nothing is
kept alive, and an object that crossed a process boundary (processes, Dask) arrives without its
origin; the write then falls back to table-level edges from the datasets its own task read
(noted as such). A lazy table (:mod:`bubbles.data.lazy`) carries its origin with its plan, so its
lineage survives the crossing.

Hashes are ``xxh3:<128-bit hex>`` (xxhash, ~10 GB/s) or, without xxhash, ``sha256:<hex>``.
Files on object storage are recorded without a content hash (it would mean reading them back).
"""

from __future__ import annotations

import hashlib
import json
import os
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import _kept
from .. import _naming as naming
from .._context import TaskContext, _current, record_event
from .._events import Dataset, LineageEdge
from .sqllineage import IDENTITY, TRANSFORMATION, query_lineage

__all__ = [
    "Origin",
    "active",
    "came_from",
    "content_hash",
    "copy_origin",
    "dataset_origin",
    "files_written",
    "origin_of",
    "query_origin",
    "read",
    "read_file",
    "remember",
    "wrote",
]

_CHUNK = 4 << 20
Ref = tuple[str, str, str, str]  # (namespace, name, column, transformation)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where the data of an in-memory object came from.

    Attributes:
        columns: column -> its input columns; ``None`` when every column is the same-named column
            of ``tables`` (a reader's result, a file given to ``bubbles.sql`` by path).
        tables: the datasets the object derives from, ``(namespace, name)``.
        note: why the lineage is coarser than columns, when it is.
    """

    columns: Mapping[str, tuple[Ref, ...]] | None
    tables: tuple[tuple[str, str], ...]
    note: str | None = None

    def of(self, column: str) -> tuple[Ref, ...]:
        """The input columns ``column`` comes from."""
        if self.columns is None:
            return tuple((ns, name, column, IDENTITY) for ns, name in self.tables)
        return self.columns.get(column, ())


# id(obj) -> (weak reference to obj, its origin); an entry leaves with its object
_origins: dict[int, tuple[weakref.ref[Any], Origin]] = {}


def active() -> TaskContext | None:
    """The running task attempt, if lineage is recorded for it (in a task, ``lineage`` setting not ``off``)."""
    ctx = _current.get()
    if ctx is None or (ctx.settings is not None and ctx.settings.lineage == "off"):
        return None
    return ctx


def remember(obj: Any, origin: Origin | None) -> Any:
    """Attach ``origin`` to ``obj`` (by weak reference; objects that take none are skipped). Returns ``obj``.

    Only inside a task that records lineage: elsewhere nothing would ever ask.
    """
    if origin is None or obj is None or active() is None:
        return obj
    if getattr(type(obj), "__bubbles_lazy__", False):
        obj._origin = origin  # a lazy table carries its origin with its plan (across processes too)
    key = id(obj)

    def gone(ref: weakref.ref[Any]) -> None:
        _forget(key, ref)

    try:
        ref = weakref.ref(obj, gone)
    except TypeError:
        return obj
    _origins[key] = (ref, origin)
    return obj


def _forget(key: int, ref: weakref.ref[Any]) -> None:
    entry = _origins.get(key)
    if entry is not None and entry[0] is ref:
        _origins.pop(key, None)


def origin_of(obj: Any) -> Origin | None:
    entry = _origins.get(id(obj))
    if entry is None or entry[0]() is not obj:
        if getattr(type(obj), "__bubbles_lazy__", False):
            return getattr(obj, "__bubbles_origin__", None)
        kept = _kept.loaded(obj).get("origin")  # an output a resumed run reused: its origin was kept with it
        return _origin_from_text(kept) if kept else None
    return entry[1]


def _origin_text(obj: Any) -> dict[str, str]:
    """``{"origin": JSON}`` of ``obj``'s origin, for a checkpoint to keep (see :mod:`bubbles._kept`)."""
    origin = origin_of(obj)
    if origin is None:
        return {}
    columns = None if origin.columns is None else {c: [list(r) for r in refs] for c, refs in origin.columns.items()}
    return {"origin": json.dumps({"columns": columns, "tables": [list(t) for t in origin.tables], "note": origin.note})}


def _origin_from_text(text: str) -> Origin | None:
    try:
        data = json.loads(text)
        columns = data["columns"]
        return Origin(
            None if columns is None else {c: tuple(tuple(r) for r in refs) for c, refs in columns.items()},  # type: ignore[misc]
            tuple(tuple(t) for t in data["tables"]),  # type: ignore[misc]
            data.get("note"),
        )
    except (ValueError, KeyError, TypeError):
        return None


_kept.register_saver(_origin_text)


def copy_origin(dst: Any, src: Any) -> Any:
    """Give ``dst`` the origin of ``src`` (``read_all()`` of a stream, a conversion). Returns ``dst``."""
    return remember(dst, origin_of(src))


def dataset_origin(namespace: str, name: str) -> Origin:
    return Origin(None, ((namespace, name),))


def _schema(schema: Any) -> list[list[str]] | None:
    if schema is None:
        return None
    if hasattr(schema, "names") and hasattr(schema, "types"):  # a pyarrow.Schema
        return [[str(n), str(t)] for n, t in zip(schema.names, schema.types, strict=True)]
    return [[str(n), str(t)] for n, t in schema]


# -- reads ---------------------------------------------------------------------------------------------
def read(obj: Any, namespace: str, name: str, *, kind: str, format: str | None = None, rows: int | None = None,
         nbytes: int | None = None, schema: Any = None, origin: Origin | None = None) -> Any:
    """Record a dataset read, and that ``obj`` (what the reader returns, if any) came from it. Returns ``obj``."""
    if active() is None:
        return obj
    record_event(Dataset(direction="read", namespace=namespace, name=name, dataset_kind=kind, format=format, rows=rows,
                         bytes=nbytes, schema=_schema(schema)))
    return remember(obj, origin or dataset_origin(namespace, name))


def read_file(obj: Any, loc: Any, format: str, *, table: Any = None) -> Any:
    """:func:`read` for a file (a path or a ``Location``): rows, bytes and schema from ``table`` (the
    Arrow table read) if given, else the schema of ``obj`` (a stream). Returns ``obj``."""
    if active() is None:
        return obj
    namespace, name = naming.file_dataset(loc)
    from .files._common import size_on_disk

    size = size_on_disk(loc)
    if table is not None:
        return read(obj, namespace, name, kind="file", format=format, rows=table.num_rows, nbytes=size,
                    schema=table.schema)
    return read(obj, namespace, name, kind="file", format=format, nbytes=size, schema=getattr(obj, "schema", None))


def came_from(obj: Any, namespace: str, name: str) -> Any:
    """Remember that ``obj`` holds the data of dataset ``namespace``/``name`` (same columns). Returns ``obj``."""
    return remember(obj, dataset_origin(namespace, name))


# -- writes --------------------------------------------------------------------------------------------
def wrote(data: Any, namespace: str, name: str, *, kind: str, format: str | None = None, rows: int | None = None,
          nbytes: int | None = None, schema: Any = None, content_hash: str | None = None,
          columns: Sequence[tuple[str, str]] | None = None, origin: Origin | None = None) -> None:
    """Record a dataset written from ``data``, and where its columns came from.

    Args:
        columns: ``(output column, column of data)`` pairs when the writer renames; default: the
            schema's names, unchanged.
        origin: where ``data`` came from, if the caller knows better than ``data`` itself.
    """
    ctx = active()
    if ctx is None:
        return
    shown = _schema(schema)
    record_event(Dataset(direction="write", namespace=namespace, name=name, dataset_kind=kind, format=format, rows=rows,
                         bytes=nbytes, content_hash=content_hash, schema=shown))
    origin = origin or origin_of(data)
    if origin is None:
        _edges_from_task_reads(ctx, namespace, name)
        return
    pairs = list(columns) if columns is not None else [(c, c) for c, _t in (shown or [])]
    for out, src in pairs:
        for ns, nm, col, how in origin.of(src):
            record_event(LineageEdge(namespace=namespace, name=name, column=out, input_namespace=ns, input_name=nm,
                                     input_column=col, transformation=how))
    for ns, nm in origin.tables:
        if (ns, nm) != (namespace, name):
            record_event(LineageEdge(namespace=namespace, name=name, input_namespace=ns, input_name=nm, note=origin.note))


def _edges_from_task_reads(ctx: TaskContext, namespace: str, name: str) -> None:
    """Data of unknown origin: it derives, as far as bubbles can tell, from what its task read."""
    seen: set[tuple[str, str]] = set()
    for event in list(ctx.events or ()):
        if isinstance(event, Dataset) and event.direction == "read" and (event.namespace, event.name) != (namespace, name):
            key = (event.namespace, event.name)
            if key not in seen:
                seen.add(key)
                record_event(LineageEdge(namespace=namespace, name=name, input_namespace=key[0], input_name=key[1],
                                         note="table-level: the data's origin was not tracked (it crossed a process, or "
                                              "was made in Python); derived from what the task read"))


def content_hash(path: str) -> str | None:
    """``xxh3:<hex>`` (or ``sha256:<hex>`` without xxhash) of a local file; ``None`` if it cannot be read."""
    try:
        import xxhash

        h: Any = xxhash.xxh3_128()
        prefix = "xxh3"
    except ImportError:
        h, prefix = hashlib.sha256(), "sha256"
    try:
        with open(path, "rb") as f:
            buffer = bytearray(_CHUNK)
            view = memoryview(buffer)
            while n := f.readinto(buffer):
                h.update(view[:n])
    except OSError:
        return None
    return f"{prefix}:{h.hexdigest()}"


def _combined_hash(parts: Iterable[tuple[str, str | None]]) -> str | None:
    """One hash for a set of files: of their relative paths and hashes, in path order."""
    items = sorted(parts)
    if not items or any(h is None for _p, h in items):
        return None
    prefix = items[0][1].split(":", 1)[0]  # type: ignore[union-attr]
    text = "".join(f"{p}\0{h}\n" for p, h in items)
    try:
        import xxhash

        if prefix == "xxh3":
            return f"xxh3:{xxhash.xxh3_128_hexdigest(text.encode())}"
    except ImportError:
        pass
    return f"sha256:{hashlib.sha256(text.encode()).hexdigest()}"


def files_written(data: Any, written: Sequence[Any], format: str, *, dataset: Any = None,
                  columns: Sequence[tuple[str, str]] | None = None) -> None:
    """Record what a file writer produced (its :class:`~bubbles.data.files.WrittenFile` list).

    Each file is a dataset of its own; with ``dataset`` (a partitioned or appended-to directory)
    the directory is one dataset: rows and bytes summed, the content hash over its files written now.
    """
    if active() is None or not written:
        return
    if dataset is not None:
        ns, name = naming.file_dataset(dataset)
        local = "://" not in ns or ns.startswith("file://")
        hashes = [(os.path.relpath(f.path, name) if local else f.path, content_hash(f.path) if local else None)
                  for f in written]
        wrote(data, ns, name, kind="file", format=format, rows=sum(f.rows for f in written),
              nbytes=sum(f.bytes for f in written), schema=written[0].schema, content_hash=_combined_hash(hashes),
              columns=columns)
        return
    for f in written:
        ns, name = naming.file_dataset(f.path)
        digest = content_hash(f.path) if ns.startswith("file://") else None
        wrote(data, ns, name, kind="file", format=format, rows=f.rows, nbytes=f.bytes, schema=f.schema,
              content_hash=digest, columns=columns)


# -- queries -------------------------------------------------------------------------------------------
def query_origin(query: str, dialect: str, inputs: Mapping[str, Origin | None], schemas: Mapping[str, Sequence[str]],
                 output: Sequence[str], resolve: Any = None) -> Origin:
    """The origin of a query's result, from its column lineage and its inputs' origins.

    Args:
        inputs: table name (as the query names it) -> that input's origin (``None``: unknown).
        schemas: table name -> its columns, where known.
        output: the result's columns.
        resolve: for database queries, ``name parts -> (namespace, name)`` of a table the query
            reads (its inputs are then the tables themselves).
    """
    lineage = query_lineage(query, dialect, schemas)
    by_name = {k.lower(): v for k, v in inputs.items()}
    if resolve is not None:
        for parts in lineage.tables:
            by_name.setdefault(parts[-1].lower(), dataset_origin(*resolve(parts)))
    tables: dict[tuple[str, str], None] = {}
    used = [by_name.get(p[-1].lower()) for p in lineage.tables] if lineage.tables else list(by_name.values())
    if lineage.note is not None and resolve is None:
        used = list(by_name.values())  # not parsed: every input may have contributed
    for origin in used:
        for t in origin.tables if origin is not None else ():
            tables[t] = None
    if lineage.note is not None:
        return Origin({}, tuple(tables), lineage.note)
    star = lineage.columns.get("*") is not None and len(lineage.tables) == 1
    columns: dict[str, tuple[Ref, ...]] = {}
    for out in output:
        refs: dict[Ref, None] = {}
        derived = lineage.columns.get(out)
        if derived is None and star:  # SELECT * over a table whose columns were not known: the same names
            derived = ((lineage.tables[0][-1], out, IDENTITY),)
        for table, column, how in derived or ():
            origin = by_name.get(table.lower())
            for ns, nm, col, inner in origin.of(column) if origin is not None else ():
                refs[(ns, nm, col, IDENTITY if how == inner == IDENTITY else TRANSFORMATION)] = None
        columns[out] = tuple(refs)
    return Origin(columns, tuple(tables))


# -- databases -----------------------------------------------------------------------------------------
def _db_table(spec: Any, parts: tuple[str, ...]) -> tuple[str, str]:
    return naming.db_dataset(spec, parts[-1], parts[-2] if len(parts) >= 2 else None)


def db_query(conn: Any, query: str, output: Sequence[str]) -> Origin | None:
    """The origin of a database query's result (the tables it reads, column by column), if lineage is recorded."""
    if active() is None:
        return None
    return query_origin(query, conn.dialect, {}, {}, output, resolve=lambda parts: _db_table(conn.spec, parts))


def db_read_done(origin: Origin | None, rows: int, schema: Any) -> None:
    """Record the tables a finished query read (rows and schema when it read one table)."""
    if origin is None or active() is None:
        return
    one = len(origin.tables) == 1
    for namespace, name in origin.tables:
        read(None, namespace, name, kind="table", rows=rows if one else None, schema=schema if one else None,
             origin=origin)


def db_wrote(data: Any, conn: Any, table: Any, rows: int, schema: Any) -> None:
    """Record a table loaded by ``write_table``."""
    if active() is None:
        return
    from .db.base import split_table

    schema_name, name = split_table(table)
    namespace, dataset = naming.db_dataset(conn.spec, name, schema_name)
    wrote(data, namespace, dataset, kind="table", rows=rows, schema=schema)


# -- deliveries ----------------------------------------------------------------------------------------
def delivered(sources: Sequence[str], target: str, batch: str, entries: Sequence[Mapping[str, Any]]) -> None:
    """Record a delivered batch: each file as a ``delivery`` dataset at the destination, from its source file."""
    if active() is None:
        return
    for source, entry in zip(sources, entries, strict=True):
        read(None, *naming.file_dataset(source), kind="file", rows=entry.get("rows"))
        if target.startswith(("http://", "https://")):
            namespace, base = naming.api_dataset(target)
            name = f"{base.rstrip('/')}/{batch}/{entry['name']}"
        else:
            namespace, base = naming.file_dataset(target)
            name = f"{base.rstrip('/')}/{batch}/{entry['name']}"
        schema = [(c["name"], c["type"]) for c in entry.get("schema") or ()] or None
        fmt = entry["name"].removesuffix(".age").rsplit(".", 1)[-1] if "." in entry["name"] else None
        wrote(None, namespace, name, kind="delivery", format=fmt, rows=entry.get("rows"), nbytes=entry.get("bytes"),
              schema=schema, content_hash=f"sha256:{entry['sha256']}",
              origin=dataset_origin(*naming.file_dataset(source)))
