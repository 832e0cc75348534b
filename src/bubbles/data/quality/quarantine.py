"""The quarantine: one place, one format, for every row bubbles sets aside.

Bad lines of ``read_csv``/``read_json`` (``on_bad_lines="quarantine"``) and rows a contract
rejects go to a **sink**, one per source, that is only ever appended to:

* a **Parquet dataset**: a folder (local or a URL) holding one ``part-*.parquet`` file per append,
  written aside and renamed, so a reader sees whole files only; by default
  ``<quarantine_dir>/<source>`` (the ``quarantine_dir`` setting, else ``quarantine/`` in the
  bubbles home);
* or a **database table**: ``"URL#table"``, e.g. ``"duckdb:///w.duckdb#quarantine_orders"`` or
  ``"postgresql://etl:${PW}@db/dw#audit.quarantine_orders"`` (appended in one transaction, its
  columns grown as needed).

Each row keeps the source's columns (as they came in: raw, before any cast or mask) plus:

================  ==========================================================================
``_rules``        the rules it broke, comma-separated (``amount.range, status.accepted_values``;
                  ``bad_line`` for a line that did not parse)
``_reason``       why, in words
``_column``       the column(s) at fault
``_values``       the offending values as JSON (``{"amount": "-5.00"}``), ``pii`` columns masked
``_raw``          the raw text of a bad line (else null)
``_source``       the file or table the row came from; ``_line``: its line, where known
``_contract``     the contract that rejected it (null for bad lines)
``_run_id``       the run, ``_task`` the task, ``_at`` when (UTC)
``_pii``          the source columns tagged ``pii`` (comma-separated): what ``bubbles quarantine
                  show`` masks
================  ==========================================================================

Every append is recorded as a :class:`~bubbles._events.QuarantineWrite` event (store table
``quarantines``), which is how ``bubbles quarantine ls`` finds the sinks.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..._errors import ConfigError, DataError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["META_COLUMNS", "Sink", "append", "default_sink", "meta_schema", "read_quarantine", "sink_for"]

META_COLUMNS = ("_rules", "_reason", "_column", "_values", "_raw", "_source", "_line", "_contract", "_run_id", "_task",
                "_at", "_pii")
_DB_SCHEMES = ("duckdb", "sqlite", "postgresql", "postgres")


def meta_schema() -> pa.Schema:
    import pyarrow as pa

    types = {"_line": pa.int64(), "_at": pa.timestamp("us", tz="UTC")}
    return pa.schema([pa.field(n, types.get(n, pa.string())) for n in META_COLUMNS])


@dataclass(frozen=True)
class Sink:
    """Where quarantined rows go: a Parquet dataset folder, or a table of a database (``URL#table``)."""

    location: str  # as given: a folder or URL#table (secret references unresolved)

    @property
    def kind(self) -> str:
        return "table" if _is_table(self.location) else "parquet"

    @property
    def url(self) -> str:
        return self.location.rpartition("#")[0]

    @property
    def table(self) -> str:
        return self.location.rpartition("#")[2]

    def __str__(self) -> str:
        return self.location


def _is_table(location: str) -> bool:
    scheme = location.split("://", 1)[0].lower() if "://" in location else ""
    return scheme.split("+")[0] in _DB_SCHEMES and "#" in location


def default_sink(name: str) -> Sink:
    """``<quarantine_dir>/<name>`` (the ``quarantine_dir`` setting, else ``quarantine/`` in the home)."""
    from ..._settings import current_settings

    settings = current_settings()
    root = settings.quarantine_dir or os.path.join(str(settings.home_path()), "quarantine")
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name) or "data"
    return Sink(os.path.join(root, safe))


def sink_for(spec: Any, name: str) -> Sink | None:
    """The sink a ``quarantine=`` argument names: ``None`` the default for ``name``, ``False`` none."""
    if spec is False:
        return None
    if spec is None or spec is True:
        return default_sink(name)
    if isinstance(spec, Sink):
        return spec
    if isinstance(spec, str | os.PathLike):
        text = os.fspath(spec)
        if "://" in text and text.split("://", 1)[0].lower().split("+")[0] in _DB_SCHEMES and "#" not in text:
            raise ConfigError(f"quarantine={text!r} is a database: name the table after '#', e.g. {text}#quarantine_{name}.")
        return Sink(text)
    raise ConfigError(f"quarantine= must be a folder, 'URL#table', False or None, got {spec!r}.")


def complete(rows: pa.Table, *, source: str | None, contract: str | None, pii: Sequence[str] = ()) -> pa.Table:
    """``rows`` with every metadata column, filled where it is the same for all (run, task, time)."""
    import pyarrow as pa

    from ..._context import current_task

    ctx = current_task()
    n = rows.num_rows
    fixed = {
        "_source": source,
        "_contract": contract,
        "_run_id": ctx.run_id if ctx else None,
        "_task": ctx.task if ctx else None,
        "_pii": ", ".join(pii) or None,
    }
    schema = meta_schema()
    at = pa.array([int(time.time() * 1_000_000)] * n, pa.int64()).cast(schema.field("_at").type)
    for f in schema:
        if f.name in rows.schema.names:
            if f.name in fixed and fixed[f.name] is not None:
                rows = rows.set_column(rows.schema.get_field_index(f.name), f.name, pa.array([fixed[f.name]] * n, f.type))
            continue
        if f.name == "_at":
            rows = rows.append_column(f, at)
        else:
            rows = rows.append_column(f, pa.array([fixed.get(f.name)] * n, f.type))
    return rows


def append(sink: Sink, rows: pa.Table, *, source: str | None = None, contract: str | None = None,
           storage_options: dict[str, Any] | None = None) -> Any:
    """Append ``rows`` (source columns + metadata, see :func:`complete`) to ``sink``; record the event.

    Returns the :class:`~bubbles._events.QuarantineWrite` recorded (``None`` for no rows).
    """
    from ..._context import record_event
    from ..._events import QuarantineWrite

    if rows.num_rows == 0:
        return None
    if sink.kind == "table":
        part = _append_table(sink, rows)
    else:
        part = _append_parquet(sink, rows, storage_options)
    event = QuarantineWrite(sink=sink.location, sink_kind=sink.kind, part=part, source=source, contract=contract,
                            rows=rows.num_rows)
    record_event(event)
    return event


def _append_parquet(sink: Sink, rows: pa.Table, storage_options: dict[str, Any] | None) -> str:
    import pyarrow.parquet as pq

    from ..._context import current_task
    from ..files._atomic import atomic_file
    from ..files._fs import locate

    ctx = current_task()
    run = ctx.run_id if ctx else "norun"
    now = time.time_ns()  # part names sort in the order they were appended
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 1_000_000_000)) + f"{now % 1_000_000_000:09d}"
    name = f"part-{stamp}-{run}-{uuid.uuid4().hex[:8]}.parquet"
    target = locate(sink.location.rstrip("/") + "/" + name, storage_options)
    with atomic_file(target) as tmp:
        pq.write_table(rows, tmp, compression="zstd")
    return target.path if target.is_local else target.url  # absolute: `bubbles gc` may run from another folder


def _append_table(sink: Sink, rows: pa.Table) -> str:
    from ..._secrets import resolve
    from ..db import connect, write_table

    with connect(resolve(sink.url, purpose=f"the quarantine table {sink.table}")) as conn:
        write_table(conn, sink.table, rows, mode="append")
    return sink.table


def read_quarantine(sink: str | Sink, *, run_id: str | None = None, storage_options: dict[str, Any] | None = None) -> pa.Table:
    """Every row of a sink (optionally of one run), oldest first, as an Arrow table.

    Example:
        >>> from bubbles.data.quality import read_quarantine
        >>> rows = read_quarantine("~/.local/share/bubbles/quarantine/orders")  # doctest: +SKIP
    """
    s = sink if isinstance(sink, Sink) else Sink(os.fspath(sink))
    if s.kind == "table":
        from ..._secrets import resolve
        from ..db import connect, read_table

        with connect(resolve(s.url, purpose=f"the quarantine table {s.table}")) as conn:
            table = read_table(conn, s.table)
    else:
        table = _read_parquet(s, storage_options)
    if run_id is not None and table.num_rows:
        import pyarrow.compute as pc

        table = table.filter(pc.equal(table.column("_run_id"), run_id))
    return table


def parts(sink: Sink, storage_options: dict[str, Any] | None = None) -> list[str]:
    """The part files of a Parquet sink, oldest first."""
    from ..files._fs import locate

    loc = locate(sink.location, storage_options)
    try:
        infos = loc.fs.get_file_info(_selector(loc.path))
    except (FileNotFoundError, OSError):
        return []
    names = [i.path for i in infos if i.path.rsplit("/", 1)[-1].startswith("part-") and i.path.endswith(".parquet")]
    return sorted(names, key=lambda p: p.rsplit("/", 1)[-1])


def _selector(path: str) -> Any:
    import pyarrow.fs as pafs

    return pafs.FileSelector(path, allow_not_found=True, recursive=False)


def _read_parquet(sink: Sink, storage_options: dict[str, Any] | None) -> pa.Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..files._fs import locate

    loc = locate(sink.location, storage_options)
    files = parts(sink, storage_options)
    if not files:
        if loc.is_local and not os.path.isdir(loc.path):
            raise DataError(f"No quarantine at {sink.location}: the folder does not exist. `bubbles quarantine ls` lists "
                            "the sinks runs wrote.", source=sink.location)
        return meta_schema().empty_table()
    tables = [pq.read_table(f, filesystem=loc.fs) for f in files]
    return pa.concat_tables(tables, promote_options="permissive")
