"""Running a plan: one DuckDB statement, with settings a careful user would choose, checked, and reported.

**Settings** (from the run's settings, see docs/lazy.md): ``threads`` all cores (``engine_threads``),
``memory_limit`` half the machine's memory (``engine_memory_limit``; DuckDB's own default is 80 %
per connection, and two plans may run at once on the threads executor), so big sorts, joins and
aggregations spill to a temporary folder (``<tmp>/bubbles-duckdb-<uid>``) instead of exhausting
memory; insertion order kept (``engine_preserve_order``; a query without ``ORDER BY`` has no order
in SQL, and dropping it saves some time and memory when the rows' order does not matter).

**Guards** (:mod:`.csvscan`): when a statement over CSV files parsed by DuckDB stops — a guard
met a value whose shape the plan does not read, DuckDB's strict parser met a malformed line —
the files are marked to be read by the bubbles reader and the statement runs once more. After
a statement that ran to its end, DuckDB's profile says how many rows each CSV scan produced;
a scan that may not have read its whole file (a ``LIMIT``, a join that skipped it, a query that
never reads that input) is completed by a count over the guarded scan, so that a bad line is
never missed because the query did not need its row: the result is the one the materialised
path gives, or the error it raises.

**Streams** (a plan handed to a writer that takes batches) cannot start over once batches are
out: a guard stopping one raises :class:`Restart`, and the writer, wrapped in
:func:`restartable` (its output is written aside until it is complete), runs once more.

**Reports**: the task that runs a plan records a :class:`~bubbles._events.Fused` event (which
tasks' steps ran in it, rows read and produced, which files fell back and why), the datasets it
read (rows from the profile), and ``rows_read``/``bytes_read`` for the CSV files DuckDB parsed.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from ..._context import current_task, native_work, record_event
from ..._errors import BubblesError
from .csvscan import GUARD, CsvScan, with_planner
from .plan import Binder, Node, Query

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Restart", "connect", "materialize", "plan_schema", "restartable", "result_schema", "run", "stream"]

T = TypeVar("T")
_LIMITS = ("LIMIT", "STREAMING_LIMIT", "LIMIT_PERCENT")


class Restart(BubblesError):
    """A plan handed out as a stream stopped at a guard; the consumer starts over (see :func:`restartable`)."""


def connect(node: Node | None = None) -> Any:
    """A DuckDB connection with the engine settings (see the module docstring)."""
    import duckdb

    from ..._settings import current_settings

    settings = current_settings()
    asked: dict[str, Any] = {}
    for part in node.walk() if node is not None else ():
        if isinstance(part, Query):
            for key, value in part.settings.items():
                asked.setdefault(key, value)
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        threads = asked.get("threads") or getattr(settings, "engine_threads", None)
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        memory = asked.get("memory_limit") or getattr(settings, "engine_memory_limit", None) or _half_the_memory()
        con.execute(f"SET memory_limit = '{_size(memory)}'")
        con.execute(f"SET temp_directory = '{_temp_dir()}'")
        if not getattr(settings, "engine_preserve_order", True):
            con.execute("SET preserve_insertion_order = false")
        with contextlib.suppress(duckdb.Error):  # the profile says how many rows each CSV scan read (see _complete)
            con.execute("PRAGMA enable_profiling = 'no_output'")
    except BaseException:
        con.close()
        raise
    return con


def _size(text: Any) -> str:
    from ..._errors import ConfigError

    cleaned = str(text).strip().replace(" ", "")
    if not cleaned or not all(c.isalnum() or c == "." for c in cleaned):
        raise ConfigError(f"memory_limit={text!r}: use a size such as '300MB' or '2GB'.")
    return cleaned


def _half_the_memory() -> str:
    import psutil

    return f"{psutil.virtual_memory().total // 2 // (1 << 20)}MB"


def _temp_dir() -> str:
    uid = os.getuid() if hasattr(os, "getuid") else "u"
    return os.path.join(tempfile.gettempdir(), f"bubbles-duckdb-{uid}").replace("'", "''")


# -- planning ---------------------------------------------------------------------------------------
def plan_schema(node: Node) -> pa.Schema:
    """The Arrow schema of ``node``'s result, found by binding the plan (nothing is read)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        b = Binder(con, "plan")
        text = b.relation(node, memo=False)
        return con.sql(f"SELECT * FROM {text} AS __bubbles_plan LIMIT 0", params=b.bound_params()).to_arrow_table().schema
    finally:
        con.close()


def result_schema(con: Any, text: str, params: Any) -> pa.Schema:
    """The schema of a bound plan's result, as it will run (a file that fell back may have other types than planned)."""
    return con.sql(f"SELECT * FROM {text} AS __bubbles_schema LIMIT 0", params=params).to_arrow_table().schema


# -- running ------------------------------------------------------------------------------------------
def materialize(node: Node) -> pa.Table:
    """The result of the plan as an Arrow table (what a lazy table is when Python uses it)."""
    from .dbscan import DbScan
    from .parquetscan import ParquetScan
    from .plan import ArrowLeaf

    if isinstance(node, ArrowLeaf):
        return node.table
    table: pa.Table
    if isinstance(node, CsvScan):
        table = node.read_exact()
    elif isinstance(node, ParquetScan):
        table = node.read()
        _count(table, [f.path for f in node.files] if node.loc.is_local else [])
    elif isinstance(node, DbScan):
        table = node.reader().read_all()
    else:
        return run(node, lambda con, text, params: con.sql(f"SELECT * FROM {text} AS __bubbles_result",
                                                           params=params).to_arrow_table(),
                   consumer="read for Python", rows=lambda t: t.num_rows)
    _mark_used(node)
    return table


def _count(table: pa.Table, files: list[str]) -> None:
    from ..files._common import count_read

    count_read(table.num_rows, table.nbytes, files=files)


def run(node: Node, action: Callable[[Any, str, Any], T], *, consumer: str, target: str | None = None,
        rows: Callable[[T], int | None] | None = None) -> T:
    """Run ``action(connection, relation_text, params)`` over the plan: one statement, guarded, checked, reported."""
    import duckdb

    for attempt in (1, 2):
        con = connect(node)
        b = Binder(con, "run", sink=current_task())
        try:
            text = b.relation(node, memo=False)
            _check_files(b)
            with native_work(con.interrupt):
                result = action(con, text, b.bound_params())
                scans = _complete(con, b)
            _check_files(b)
        except duckdb.Error as exc:
            if attempt == 1 and b.guarded and not isinstance(exc, duckdb.InterruptException):
                _fall_back(b, exc)
                continue
            raise _translate(exc, node) from None
        except BubblesError as exc:
            raise with_planner(exc, node) from None
        finally:
            con.close()
        _report(node, b, scans, consumer, target, rows(result) if rows is not None else None)
        return result
    raise AssertionError("unreachable")  # pragma: no cover


def stream(node: Node, *, consumer: str, target: str | None = None, batch_size: int = 122_880,
           mode: str = "run") -> pa.RecordBatchReader:
    """The plan's result as a stream. A guard stopping it raises :class:`Restart` (see :func:`restartable`).

    With ``mode="stream"`` CSV files are read by the bubbles reader as a stream with their planned
    types (a value that does not fit is a bad line): nothing can make it start over, for a consumer
    that cannot (``sql(stream=True)`` hands its stream to the caller).
    """
    import duckdb
    import pyarrow as pa

    con = connect(node)
    b = Binder(con, mode, sink=current_task())
    try:
        text = b.relation(node, memo=False)
        _check_files(b)
        reader = con.sql(f"SELECT * FROM {text} AS __bubbles_result", params=b.bound_params()).to_arrow_reader(batch_size)
    except duckdb.Error as exc:
        con.close()
        if b.guarded and not isinstance(exc, duckdb.InterruptException):
            _fall_back(b, exc)
            raise Restart(f"the plan of {consumer} must start over: {exc}") from None
        raise _translate(exc, node) from None
    except BaseException:
        con.close()
        raise

    def batches() -> Iterator[pa.RecordBatch]:
        rows = 0
        try:
            it = iter(reader)
            while True:
                try:
                    with native_work(con.interrupt):
                        batch = next(it, None)
                except BubblesError:
                    raise
                except Exception as exc:  # DuckDB's error, or the same seen through Arrow's C stream (an OSError)
                    if b.guarded and not isinstance(exc, duckdb.InterruptException):
                        _fall_back(b, exc)
                        raise Restart(f"the plan of {consumer} must start over: {exc}") from None
                    raise _translate(exc, node) from None
                if batch is None:
                    break
                rows += batch.num_rows
                yield batch
            try:
                scans = _complete(con, b)
            except duckdb.Error as exc:
                _fall_back(b, exc)
                raise Restart(f"the plan of {consumer} must start over: {exc}") from None
            _check_files(b)
            _report(node, b, scans, consumer, target, rows)
        finally:
            con.close()

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


def restartable(data: Any, body: Callable[[], T]) -> T:
    """Run ``body`` (a writer consuming ``data``); if a CSV file of ``data``'s plan fell back meanwhile, once more.

    The writer may have met the stop as :class:`Restart` or wrapped in its own error (DuckDB scanning
    the stream, a database driver pulling it): what counts is that a guarded file fell back, so the
    second run reads it with the bubbles reader, and nothing can stop it again.
    """
    from .table import LazyTable

    if not isinstance(data, LazyTable) or data.is_read:
        return body()
    scans = [n for n in data.plan.walk() if isinstance(n, CsvScan) and not n.exact]
    reads = [getattr(n, "exact_reads", 0) for n in scans]
    try:
        return body()
    except Exception:
        # once more only for a file that fell back and was not yet read by the reader in this run of the
        # writer: an error after that is the writer's own (running it again would read the file again)
        if not any(n.exact and getattr(n, "exact_reads", 0) == before for n, before in zip(scans, reads, strict=True)):
            raise
    return body()


# -- guards -------------------------------------------------------------------------------------------
def _fall_back(b: Binder, exc: BaseException) -> None:
    reason = " ".join(str(exc).split())
    reason = reason[:300] + ("..." if len(reason) > 300 else "")
    for leaf in b.guarded:
        leaf.fall_back(reason)


def _check_files(b: Binder) -> None:
    for leaf in b.files:
        leaf.check()


def _complete(con: Any, b: Binder) -> dict[str, int]:
    """Rows each guarded CSV scan produced; a scan that may have stopped early is finished by a count."""
    if not b.guarded:
        return {}
    found, limited = _profile(con)
    for leaf in b.guarded:
        path = leaf.identity.path
        if path in found and not limited and (found[path] > 0 or (found[path] == 0 and leaf.first_rows == 0)):
            continue  # the guard saw the whole file
        text = leaf.scan_sql()
        found[path] = int(con.sql(f"SELECT count(*) FROM {text} AS __bubbles_check").fetchall()[0][0])
    return found


def _profile(con: Any) -> tuple[dict[str, int], bool]:
    """From DuckDB's profile of the last statement: rows of each CSV scan by file, and whether a limit ran.

    A scan counts only if the guard saw every row it produced: the filter right above it begins with
    the guard (and DuckDB pushed no filter into the scan itself). Otherwise its rows are -1 (unknown).
    """
    try:
        info = json.loads(con.get_profiling_information(format="json"))
    except Exception:  # no profile (an older DuckDB): every scan is checked by a count
        return {}, True
    found: dict[str, int] = {}
    limited = False

    def walk(op: dict[str, Any], parent: dict[str, Any] | None) -> None:
        nonlocal limited
        kind = str(op.get("operator_type") or op.get("type") or "")
        extra = op.get("extra_info") or {}
        if kind in _LIMITS:
            limited = True
        if isinstance(extra, dict) and extra.get("Function") == "READ_CSV":
            name = str(extra.get("Filename(s)") or extra.get("Filename") or "")
            rows = op.get("operator_cardinality", op.get("intermediate_rows"))
            if any("filter" in str(key).lower() for key in extra) or not _guard_first(parent):
                rows = -1  # rows the guard may not have seen: the scan's rows say nothing of the file
            if name and isinstance(rows, int):
                found[name] = rows if name not in found else min(found[name], rows)
        for child in op.get("children") or ():
            walk(child, op)

    for op in info.get("children") or info.get("operator") or ():
        walk(op, None)
    return found, limited


def _guard_first(op: dict[str, Any] | None) -> bool:
    """Whether ``op`` (the operator over a CSV scan) is a filter whose first condition is the guard."""
    if op is None or str(op.get("operator_type") or op.get("type") or "") != "FILTER":
        return False
    expression = str((op.get("extra_info") or {}).get("Expression") or "").lstrip("( ")
    return expression.startswith("CASE") and GUARD in expression


# -- reports -----------------------------------------------------------------------------------------------
def _mark_used(node: Node) -> None:
    for part in node.walk():
        part.used = True


def _report(node: Node, b: Binder, scans: dict[str, int], consumer: str, target: str | None, rows_out: int | None) -> None:
    _mark_used(node)
    if rows_out is not None:
        node.rows = rows_out  # (``num_rows`` of the lazy table after a writer wrote it: that run's count, not a new read)
    ctx = current_task()
    if ctx is None:
        return
    from ..._events import Fused
    from ..files._common import count_read

    steps: list[dict[str, Any]] = []
    for part in _steps(node):
        step: dict[str, Any] = {"task": part.planned_by, "step": part.step, "source": part.source()}
        if isinstance(part, CsvScan):
            rows = scans.get(part.identity.path)
            step["rows"] = rows
            step["parsed_by"] = "bubbles reader" if part.exact else "duckdb"
            if part.exact_reason:
                step["fallback"] = part.exact_reason
            if not part.exact:  # (the bubbles reader counts what it reads itself)
                count_read(rows or 0, part.identity.size)
            _record_read(ctx, part, rows)
        steps.append(step)
    steps.append({"task": ctx.task, "step": consumer, "source": target, "rows": rows_out})
    fallbacks = [s["fallback"] for s in steps if s.get("fallback")]
    if len({s["task"] for s in steps if s["task"]}) < 2 and all(s["step"] in ("table", "sql") for s in steps[:-1]):
        return  # one task's own query over tables it holds: nothing was fused (no read ran inside the plan)
    record_event(Fused(
        engine="duckdb",
        tasks=", ".join(dict.fromkeys(str(s["task"]) for s in steps if s["task"])),
        plan=" -> ".join(_describe(s) for s in steps),
        steps=json.dumps(steps, default=str),
        fallback="; ".join(fallbacks) if fallbacks else None,
        rows_out=rows_out,
    ))


def _record_read(ctx: Any, scan: CsvScan, rows: int | None) -> None:
    """The dataset the plan read: the planned read's record when this attempt planned it (rows added), else a new one."""
    import dataclasses

    from ... import _naming as naming
    from ..._events import Dataset
    from .. import lineage

    if lineage.active() is None:
        return
    namespace, name = naming.file_dataset(scan.spec.loc)
    events = ctx.events or []
    for i, event in enumerate(events):
        if (isinstance(event, Dataset) and event.direction == "read" and event.rows is None
                and (event.namespace, event.name) == (namespace, name)):
            events[i] = dataclasses.replace(event, rows=rows)
            return
    lineage.read(None, namespace, name, kind="file", format="csv", rows=rows, nbytes=scan.identity.size,
                 schema=scan.schema)


def _steps(node: Node) -> list[Node]:
    """The plan's steps, reads first (post-order), each once."""
    out: list[Node] = []
    seen: set[int] = set()

    def visit(n: Node) -> None:
        if id(n) in seen:
            return
        seen.add(id(n))
        for part in n.parts():
            visit(part)
        out.append(n)

    visit(node)
    return out


def _describe(step: dict[str, Any]) -> str:
    who = f"{step['task']}: " if step.get("task") else ""
    source = str(step.get("source") or "")
    source = source if len(source) <= 60 else source[:57] + "..."
    what = f"{step['step']} {source}" if source else str(step["step"])
    details = []
    if step.get("rows") is not None:
        details.append(f"{step['rows']:,} rows")
    if step.get("parsed_by") == "bubbles reader":
        details.append("read by the bubbles reader")
    return f"{who}{what}" + (f" ({', '.join(details)})" if details else "")


def _translate(exc: BaseException, node: Node) -> BubblesError:
    from ..transform import _translate as translate_sql

    top = node if isinstance(node, Query) else next((n for n in node.walk() if isinstance(n, Query)), None)
    query = top.query if top is not None else ""
    names = list(top.inputs) if top is not None else []
    error = translate_sql(exc, query, dict.fromkeys(names))
    return with_planner(error, top or node)
