"""Loading Arrow data into a table: append, replace, merge; one transaction per load.

How each mode runs (all inside one transaction: a failure leaves the target as it was)::

    append   create the table from the Arrow schema if missing; bulk-insert the batches
    replace  empty the table (TRUNCATE on PostgreSQL, DELETE elsewhere) and bulk-insert the batches:
               the table itself stays, with its indexes, constraints, grants, triggers and the
               views that depend on it; readers see the old rows until the commit (PostgreSQL's
               TRUNCATE makes them wait for it). Column types are never changed (SchemaDriftError)
    merge    PostgreSQL: LOCK the table against other writers; per batch, look up which keys
               exist (keys staged in a temp table), bulk-insert the rows with new keys straight
               into the table, stage the others and UPDATE those whose values changed
             DuckDB, SQLite: bulk-insert into a temporary staging table, then
               INSERT ... SELECT ... ON CONFLICT (key) DO UPDATE when the table has a primary
               key or unique constraint on ``key`` (tables bubbles creates do); otherwise DELETE
               the matching keys, then INSERT
             A key twice in one load is refused, naming it: DataError (on PostgreSQL a
             ConstraintViolation from the unique index for a new key; a streamed load is
             checked per step of 262,144 rows, and a repeat in a later step updates the row).

Bulk insert is ADBC ingest (binary COPY) on PostgreSQL, ``INSERT ... SELECT`` from the Arrow
stream on DuckDB, ``executemany`` on SQLite. Data flows batch by batch (``batch_size`` rows), so
a load needs memory for one batch, not the whole input.

Schema drift against an existing table: ``schema="evolve"`` (default) adds new columns as
nullable, ``"freeze"`` raises :class:`SchemaDriftError` naming them, ``"discard"`` drops them.
A column whose type would change is always an error, unless the new type widens into the old
(``int32`` into ``BIGINT``); see :mod:`bubbles.data.db.types`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from ..._context import log_metric
from ..._errors import BubblesError, ConfigError, DataError
from .. import lineage
from ..files._common import to_arrow
from ..lazy import is_lazy
from ..lazy.engine import restartable
from .base import (
    DEFAULT_BATCH_ROWS,
    Connection,
    Session,
    display_table,
    qualified,
    quote_ident,
    split_table,
    transaction,
    using,
)
from .errors import SchemaDriftError, in_task
from .types import can_widen, normalize_arrow, sql_type

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["as_reader", "write_table"]

Mode = Literal["append", "replace", "merge"]
MERGE_BATCH_ROWS = 262_144
SchemaPolicy = Literal["evolve", "freeze", "discard"]


def as_reader(data: Any, batch_size: int = 65_536) -> pa.RecordBatchReader:
    """Arrow table, record batch(es), reader, pandas or polars DataFrame -> a RecordBatchReader."""
    import pyarrow as pa

    if isinstance(data, pa.RecordBatchReader):
        return data
    if is_lazy(data):  # its plan streams (a read table: its batches)
        data = to_arrow(data, what="write_table data")
        if isinstance(data, pa.RecordBatchReader):
            return data
    if isinstance(data, pa.Table):
        return data.to_reader(max_chunksize=batch_size)
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data]).to_reader(max_chunksize=batch_size)
    if hasattr(data, "__arrow_c_stream__") and not isinstance(data, list | tuple):
        try:
            return pa.RecordBatchReader.from_stream(data)
        except Exception:  # pandas objects expose the protocol but some versions fail; fall through
            pass
    module = type(data).__module__.split(".")[0]
    if module == "pandas":
        return pa.Table.from_pandas(data, preserve_index=False).to_reader(max_chunksize=batch_size)
    if module == "polars":
        return data.to_arrow().to_reader(max_chunksize=batch_size)  # type: ignore[no-any-return]
    if isinstance(data, Iterable):
        it = iter(data)
        first = next(it, None)
        if not isinstance(first, pa.RecordBatch):
            raise ConfigError(
                f"write_table(): an iterable of data must yield pyarrow.RecordBatch objects, got {type(first).__name__}."
            )

        def chain() -> Iterator[pa.RecordBatch]:
            yield first
            yield from it

        return pa.RecordBatchReader.from_batches(first.schema, chain())
    raise ConfigError(
        f"write_table() cannot load a {type(data).__name__}. Pass a pyarrow Table, RecordBatch or "
        "RecordBatchReader, an iterable of RecordBatches, or a pandas/polars DataFrame."
    )


def write_table(
    conn: Connection | str,
    table: str | Sequence[str],
    data: Any,
    *,
    mode: Mode = "append",
    key: str | Sequence[str] | None = None,
    schema: SchemaPolicy = "evolve",
    batch_size: int = 65_536,
) -> int:
    """Load Arrow ``data`` into ``table`` in one transaction; returns the number of rows loaded.

    Args:
        conn: a connection, URL or connection name.
        table: ``"orders"`` or ``"schema.orders"`` (quoted as identifiers; created if missing).
        data: a pyarrow Table / RecordBatch / RecordBatchReader, an iterable of RecordBatches,
            or a pandas or polars DataFrame.
        mode: ``"append"``, ``"replace"`` (all rows swapped in one transaction; the table's
            indexes, grants and dependent views stay) or ``"merge"`` (upsert by ``key``).
        key: the key column(s) for ``merge``; a created table gets it as its primary key.
        schema: what to do with columns the table lacks: ``"evolve"`` adds them (nullable),
            ``"freeze"`` raises, ``"discard"`` drops them. Type changes always raise.
        batch_size: rows per batch sent to the database.

    Raises:
        SchemaDriftError: new columns under ``"freeze"``, or a column whose type would change.
        ConstraintViolation: a constraint failed; the load was rolled back; names table and key.
        ConnectionFailed: the database is unreachable (transient: retried per the task's policy).

    Example:
        >>> import bubbles, pyarrow as pa
        >>> conn = bubbles.connect("duckdb:///:memory:")
        >>> bubbles.write_table(conn, "orders", pa.table({"id": [1, 2], "total": [9.5, 3.0]}))
        2
        >>> bubbles.write_table(conn, "orders", pa.table({"id": [2], "total": [4.0]}), mode="merge", key="id")
        1
    """
    if mode not in ("append", "replace", "merge"):
        raise ConfigError(f"write_table(mode={mode!r}): mode must be 'append', 'replace' or 'merge'.")
    if schema not in ("evolve", "freeze", "discard"):
        raise ConfigError(f"write_table(schema={schema!r}): schema must be 'evolve', 'freeze' or 'discard'.")
    keys = [key] if isinstance(key, str) else list(key or [])
    if mode == "merge" and not keys:
        raise ConfigError(
            f"write_table({display_table(table)!r}, mode='merge') needs key=[...]: the column(s) that identify a row."
        )
    return restartable(data, lambda: _load(conn, table, data, mode, keys, schema, batch_size))


def _load(conn: Connection | str, table: str | Sequence[str], data: Any, mode: Mode, keys: list[str], schema: SchemaPolicy,
          batch_size: int) -> int:
    reader = as_reader(data, batch_size)
    missing_keys = [k for k in keys if k not in reader.schema.names]
    if missing_keys:
        raise ConfigError(
            f"write_table({display_table(table)!r}): key column(s) {missing_keys} are not in the data "
            f"(columns: {', '.join(reader.schema.names)}).",
            table=display_table(table),
        )
    name = display_table(table)
    guard = _Guard()
    with using(conn) as c, c.session() as s, transaction(s, action=f"load table {name!r}", table=name):
        try:
            existing = s.table_types(table)
            if existing is None:
                _create(s, table, reader.schema, keys)
                existing = {f.name: normalize_arrow(f.type) for f in reader.schema}
            elif mode == "replace":
                # the table's definition stays (indexes, constraints, grants, triggers, dependent
                # views): only its rows are swapped, inside this transaction
                s.empty_table(table)
            reader = _reconcile(s, table, guard.wrap(reader), existing, schema, replacing=mode == "replace")
            if keys:
                reader = _check_keys(reader, keys, name)
            reader = guard.wrap(reader)
            if mode == "merge":
                rows = _merge(s, table, reader, keys, in_memory=not _is_stream(data))
            else:
                rows = s.insert_arrow(table, reader)
        except Exception as exc:
            if guard.error is not None and guard.error is not exc:
                # Raised while the driver pulled a batch. Our own errors say all in their message,
                # and their traceback runs through DuckDB's scan, which it would keep alive.
                err = guard.error
                raise (err.with_traceback(None) if isinstance(err, BubblesError) else err) from None
            raise
    log_metric("db_rows_written", max(rows, 0), add=True)
    lineage.db_wrote(data, c, table, max(rows, 0), reader.schema)  # after the commit
    return rows


def _is_stream(data: Any) -> bool:
    """True for inputs read once as they come (readers, iterators); False for data held in memory."""
    import pyarrow as pa

    return isinstance(data, pa.RecordBatchReader) or not (
        isinstance(data, pa.Table | pa.RecordBatch) or type(data).__module__.split(".")[0] in ("pandas", "polars")
    )


class _Guard:
    """Remembers an exception raised while a driver pulls batches, which drivers wrap in their own errors."""

    def __init__(self) -> None:
        self.error: BaseException | None = None

    def wrap(self, reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
        import pyarrow as pa

        def pull() -> Iterator[pa.RecordBatch]:
            try:
                yield from reader
            except Exception as exc:
                if self.error is None:
                    self.error = exc
                raise

        return pa.RecordBatchReader.from_batches(reader.schema, pull())


def _columns_sql(schema: pa.Schema, dialect: str, keys: Sequence[str] = ()) -> str:
    cols = [f"{quote_ident(f.name)} {sql_type(f.type, dialect)}" + (" NOT NULL" if f.name in keys else "") for f in schema]
    if keys:
        cols.append(f"PRIMARY KEY ({', '.join(quote_ident(k) for k in keys)})")
    return ", ".join(cols)


def _create(s: Session, table: str | Sequence[str], schema: pa.Schema, keys: Sequence[str]) -> None:
    db_schema, _ = split_table(table)
    if db_schema and s.dialect != "sqlite":
        s.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(db_schema)}")
    s.execute(f"CREATE TABLE {qualified(table)} ({_columns_sql(schema, s.dialect, keys)})")


def _reconcile(
    s: Session, table: str | Sequence[str], reader: pa.RecordBatchReader, existing: dict[str, pa.DataType | None], policy: str,
    *, replacing: bool = False,
) -> pa.RecordBatchReader:
    """Add, refuse or drop new columns per ``policy``; refuse type changes; cast to the table's types."""
    import pyarrow as pa

    name = display_table(table)
    incoming = reader.schema
    new = [f for f in incoming if f.name not in existing]
    if new and policy == "freeze":
        listed = ", ".join(f"{f.name} ({f.type})" for f in new)
        raise SchemaDriftError(
            f"Table {name!r}{in_task()} has no column(s) {listed}, and schema='freeze' forbids adding them. "
            "Drop them from the data, or load with schema='evolve' (add them) or 'discard' (ignore them).",
            source=name,
            table=name,
            columns=[f.name for f in new],
        )
    if new and policy == "evolve":
        for f in new:
            s.execute(f"ALTER TABLE {qualified(table)} ADD COLUMN {quote_ident(f.name)} {sql_type(f.type, s.dialect)}")
    changed = []
    for f in incoming:
        have = existing.get(f.name, f.type)
        if have is not None and not can_widen(f.type, have):
            changed.append(f"{f.name}: table has {have}, data has {f.type}")
    if changed:
        fix = ("mode='replace' swaps the rows and keeps the table's definition (its indexes, constraints, grants and "
               "dependent views), so it does not change column types either: cast the column in a transform, or drop "
               "the table yourself first, knowing what goes with it." if replacing else
               "cast the column in a transform, or load into a new table.")
        raise SchemaDriftError(
            f"Column types of the data do not fit table {name!r}{in_task()}: {'; '.join(changed)}. bubbles never changes "
            f"a type silently: {fix}",
            source=name,
            table=name,
            columns=[c.split(":")[0] for c in changed],
        )
    keep = [f for f in incoming if not (policy == "discard" and f.name not in existing)]
    target = pa.schema([pa.field(f.name, _target_type(f.type, existing.get(f.name))) for f in keep])
    if [f.name for f in keep] == incoming.names and all(a.type.equals(b.type) for a, b in zip(keep, target, strict=True)):
        return reader

    def cast_one(col: pa.Array, f: pa.Field, row: int) -> pa.Array:
        if col.type.equals(f.type):
            return col
        try:
            return col.cast(f.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SchemaDriftError(
                f"Column {f.name!r} ({col.type}) of the data loaded into {name!r}{in_task()} does not fit the table's "
                f"{f.type} in the batch starting at row {row}: {exc}. Round or convert it in a transform.",
                source=name,
                table=name,
                column=f.name,
                row=row,
            ) from None

    def cast() -> Iterator[pa.RecordBatch]:
        seen = 0
        for batch in reader:
            cols = [cast_one(batch.column(f.name), f, seen) for f in target]
            seen += batch.num_rows
            yield pa.RecordBatch.from_arrays(cols, schema=target)

    return pa.RecordBatchReader.from_batches(target, cast())


def _target_type(incoming: pa.DataType, have: pa.DataType | None) -> pa.DataType:
    return normalize_arrow(incoming) if have is None else have


def _check_keys(reader: pa.RecordBatchReader, keys: Sequence[str], table: str) -> pa.RecordBatchReader:
    """Refuse null keys as the batches go by (a null key can match nothing and would pile up)."""
    import pyarrow as pa

    def check() -> Iterator[pa.RecordBatch]:
        seen = 0
        for batch in reader:
            for k in keys:
                col = batch.column(k)
                if col.null_count:
                    import pyarrow.compute as pc

                    row = seen + int(pc.index(pc.is_null(col), True).as_py())
                    raise DataError(
                        f"Key column {k!r} is empty (null) at row {row} of the data loaded into {table!r}{in_task()}. "
                        "Every row needs a key: fill it or filter those rows out before the load.",
                        source=table,
                        row=row,
                        column=k,
                    )
            seen += batch.num_rows
            yield batch

    return pa.RecordBatchReader.from_batches(reader.schema, check())


def _merge(s: Session, table: str | Sequence[str], reader: pa.RecordBatchReader, keys: Sequence[str], in_memory: bool) -> int:
    unique = frozenset(keys) in {frozenset(u) for u in s.unique_keys(table)}
    if s.dialect == "postgresql" and unique:
        return _merge_split(s, table, reader, keys, in_memory)
    stage = f"__bubbles_stage_{secrets.token_hex(4)}"
    s.execute(s.temp_table_sql(stage, _columns_sql(reader.schema, s.dialect)))
    rows = s.insert_arrow((stage,), reader, temporary=True)
    names = reader.schema.names
    col_list = ", ".join(quote_ident(n) for n in names)
    target, src = qualified(table), quote_ident(stage)
    others = [n for n in names if n not in keys]
    # A key twice in one load would land twice (no constraint) or resolve arbitrarily (ON CONFLICT)
    _refuse_duplicate_keys(s, src, keys, display_table(table))
    if s.dialect == "postgresql":
        # No unique index to look keys up by: UPDATE the rows that changed, INSERT the missing
        # ones (hash joins against the whole stage), with other writers locked out in between.
        s.execute(f"LOCK TABLE {target} IN SHARE ROW EXCLUSIVE MODE")
        match = " AND ".join(f"t.{quote_ident(k)} = s.{quote_ident(k)}" for k in keys)
        if others:
            sets = ", ".join(f"{quote_ident(c)} = s.{quote_ident(c)}" for c in others)
            old = ", ".join(f"t.{quote_ident(c)}" for c in others)
            new = ", ".join(f"s.{quote_ident(c)}" for c in others)
            changed = f"ROW({old}) IS DISTINCT FROM ROW({new})"
            s.execute(f"UPDATE {target} AS t SET {sets} FROM {src} AS s WHERE {match} AND {changed}")
        s.execute(
            f"INSERT INTO {target} ({col_list}) SELECT {col_list} FROM {src} AS s "
            f"WHERE NOT EXISTS (SELECT 1 FROM {target} AS t WHERE {match})"
        )
    elif unique:
        action = (
            "DO UPDATE SET " + ", ".join(f"{quote_ident(c)} = excluded.{quote_ident(c)}" for c in others)
            if others
            else "DO NOTHING"
        )
        where = " WHERE true" if s.dialect == "sqlite" else ""  # SQLite needs it to parse ON CONFLICT after SELECT
        s.execute(
            f"INSERT INTO {target} ({col_list}) SELECT {col_list} FROM {src}{where} "
            f"ON CONFLICT ({', '.join(quote_ident(k) for k in keys)}) {action}"
        )
    else:
        match = " AND ".join(f"{src}.{quote_ident(k)} = {target}.{quote_ident(k)}" for k in keys)
        s.execute(f"DELETE FROM {target} WHERE EXISTS (SELECT 1 FROM {src} WHERE {match})")
        s.execute(f"INSERT INTO {target} ({col_list}) SELECT {col_list} FROM {src}")
    s.execute(f"DROP TABLE {src}")
    return rows


def _merge_split(
    s: Session, table: str | Sequence[str], reader: pa.RecordBatchReader, keys: Sequence[str], in_memory: bool
) -> int:
    """PostgreSQL merge into a table with a unique index on the key: per batch, bulk-insert the
    rows with new keys straight into the table and stage only the rows whose key exists, then
    UPDATE those that changed.

    Rows with new keys take the COPY fast path (an insert-mostly merge costs about an append);
    staging everything and running ``INSERT ... SELECT ... ON CONFLICT`` costs 1.5-2.5x more
    (one speculative insertion per row, every row written twice). The table is locked against
    other writers (readers go on) so no key can appear between the look-up and the insert. A key
    repeated in a later batch updates the row its earlier batch inserted (the last one wins).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as pt

    name = display_table(table)
    target = qualified(table)
    token = secrets.token_hex(4)
    kstage, stage = f"__bubbles_keys_{token}", f"__bubbles_stage_{token}"
    key_schema = pa.schema([reader.schema.field(k) for k in keys] + [pa.field("__bubbles_pos", pa.int64())])
    s.execute(f"LOCK TABLE {target} IN SHARE ROW EXCLUSIVE MODE")
    # The table's statistics do not know about the rows this load inserted a batch ago: left to
    # itself the planner hash-joins the whole table on every batch. Probe the unique index instead.
    s.execute("SET LOCAL enable_hashjoin = off")
    s.execute("SET LOCAL enable_mergejoin = off")
    s.execute(s.temp_table_sql(kstage, _columns_sql(key_schema, s.dialect)))
    s.execute(s.temp_table_sql(stage, _columns_sql(reader.schema, s.dialect)))
    ks, st = quote_ident(kstage), quote_ident(stage)
    match_k = " AND ".join(f"t.{quote_ident(k)} = k.{quote_ident(k)}" for k in keys)
    lookup = f"SELECT k.__bubbles_pos FROM {ks} AS k WHERE EXISTS (SELECT 1 FROM {target} AS t WHERE {match_k})"
    others = [n for n in reader.schema.names if n not in keys]
    update = None
    if others:
        match = " AND ".join(f"t.{quote_ident(k)} = s.{quote_ident(k)}" for k in keys)
        sets = ", ".join(f"{quote_ident(c)} = s.{quote_ident(c)}" for c in others)
        old = ", ".join(f"t.{quote_ident(c)}" for c in others)
        new = ", ".join(f"s.{quote_ident(c)}" for c in others)
        update = f"UPDATE {target} AS t SET {sets} FROM {st} AS s WHERE {match} AND ROW({old}) IS DISTINCT FROM ROW({new})"
    # Keys above the table's largest key cannot be in it (writers are locked out): those rows go
    # straight in without a look-up. Only for one integer/date/timestamp key, where Arrow's and
    # PostgreSQL's orders agree (string collations may not).
    key_type = reader.schema.field(keys[0]).type
    high_water = len(keys) == 1 and (pt.is_integer(key_type) or pt.is_date(key_type) or pt.is_timestamp(key_type))
    top_sql = f"SELECT max({quote_ident(keys[0])}) FROM {target}"
    # Data already in memory (a Table, a DataFrame) is merged in one step: each bulk insert then
    # streams in one call (separate calls cost ~30% more). A stream goes in bounded steps.
    steps = [reader.read_all()] if in_memory else (pa.Table.from_batches([b]) for b in _rebatch(reader, MERGE_BATCH_ROWS))
    rows = 0
    for step in steps:
        if not step.num_rows:
            continue
        fresh = [step]
        within = step.slice(0, 0) if high_water else step
        if high_water:
            top = s.query_all(top_sql)[0][0]
            if top is not None:
                above = pc.greater(step.column(keys[0]), pa.scalar(top, type=key_type))
                if not pc.all(above).as_py():  # (all above, the usual case: no copies)
                    fresh, within = [step.filter(above)], step.filter(pc.invert(above))
        elif within.num_rows:
            fresh = []
        updates = None
        if within.num_rows:
            positions = pa.array(range(within.num_rows), pa.int64())
            keyed = pa.Table.from_arrays([*(within.column(k) for k in keys), positions], schema=key_schema)
            s.execute(f"TRUNCATE {ks}")
            s.insert_arrow((kstage,), keyed.to_reader(), temporary=True)
            found = s.query_reader(lookup, None, within.num_rows).read_all().column(0)
            exists = pc.is_in(positions, value_set=found.combine_chunks())
            fresh.append(within.filter(pc.invert(exists)))
            updates = within.filter(exists) if len(found) else None
        new_rows = pa.concat_tables(fresh)
        if new_rows.num_rows:
            s.insert_arrow(table, new_rows.to_reader(max_chunksize=DEFAULT_BATCH_ROWS))
        if update is not None and updates is not None:
            # A key twice among new rows trips the unique index (ConstraintViolation naming it);
            # twice among existing rows, UPDATE would pick one at random: refuse it.
            _refuse_duplicates_in_batch(updates, keys, name, rows)
            s.execute(f"TRUNCATE {st}")
            s.insert_arrow((stage,), updates.to_reader(max_chunksize=DEFAULT_BATCH_ROWS), temporary=True)
            s.execute(update)
        rows += step.num_rows
    return rows


def _rebatch(reader: pa.RecordBatchReader, rows: int) -> Iterator[pa.RecordBatch]:
    """Batches of about ``rows`` rows (each step of a merge costs a few round trips: fewer, bigger steps)."""
    import pyarrow as pa

    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in reader:
        if batch.num_rows:
            pending.append(batch)
            count += batch.num_rows
        if count >= rows:
            yield pa.Table.from_batches(pending, schema=reader.schema).combine_chunks().to_batches()[0]
            pending, count = [], 0
    if count:
        yield pa.Table.from_batches(pending, schema=reader.schema).combine_chunks().to_batches()[0]


def _refuse_duplicates_in_batch(batch: pa.Table, keys: Sequence[str], table: str, offset: int) -> None:
    counts = batch.select(list(keys)).group_by(list(keys)).aggregate([([], "count_all")])
    if counts.num_rows == batch.num_rows:
        return
    import pyarrow.compute as pc

    dup = counts.filter(pc.greater(counts.column("count_all"), 1)).slice(0, 1).to_pylist()[0]
    shown = ", ".join(f"{k}={dup[k]!r}" for k in keys)
    raise DataError(
        f"Key ({shown}) appears {dup['count_all']} times in the batch starting at row {offset} of the data merged into "
        f"{table!r}{in_task()}; a merge needs each key once per load. Deduplicate first (e.g. keep the latest row per key).",
        source=table,
        column=", ".join(keys),
        key=shown,
        row=offset,
    )


def _refuse_duplicate_keys(s: Session, src: str, keys: Sequence[str], table: str) -> None:
    cols = ", ".join(quote_ident(k) for k in keys)
    dup = s.query_all(f"SELECT {cols}, count(*) FROM {src} GROUP BY {cols} HAVING count(*) > 1 LIMIT 1")
    if dup:
        *key, times = dup[0]
        shown = ", ".join(f"{k}={v!r}" for k, v in zip(keys, key, strict=True))
        raise DataError(
            f"Key ({shown}) appears {times} times in the data merged into {table!r}{in_task()}; a merge needs each key "
            "once per load. Deduplicate first (e.g. keep the latest row per key).",
            source=table,
            column=", ".join(keys),
            key=shown,
        )
