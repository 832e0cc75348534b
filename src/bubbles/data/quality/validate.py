"""Validating a batch against a contract: valid rows out, broken rows to quarantine, results everywhere.

:func:`validate` runs the contract's one query (:mod:`.compile`) and splits its result batch by
batch in Arrow: rows that broke no ``quarantine`` rule (and are not dropped duplicates) are the
valid output, conformed to the contract's types; the others, with their source values and the
rules they broke, go to the quarantine sink (:mod:`.quarantine`). Per rule it counts the rows
checked, failed and quarantined into a :class:`~bubbles._events.QualityResult`, recorded on the
running task (run store, hooks, Prometheus, ``TaskRun.events``). Then the actions: ``warn``
logs (values masked), a broken ``fail`` rule or a threshold passed raises :class:`QualityError`
naming the rule, the count, examples (masked) and the fix — after the quarantine is written, so
nothing is lost either way.

:func:`check` makes a task of it: ``wf.add_task(bubbles.check(orders), requires=[extract])``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..._errors import ConfigError
from .compile import Compiled, compile_contract, freshness_cutoff
from .contract import Contract, Rule, Threshold
from .errors import QualityError
from .masking import MaskKey
from .quarantine import Sink, append, complete, sink_for

if TYPE_CHECKING:
    import pyarrow as pa

    from ..._events import QualityResult, QuarantineWrite

__all__ = ["Validation", "check", "validate"]

log = logging.getLogger("bubbles")
_EXAMPLES = 3


@dataclass
class Validation:
    """What :func:`validate` found.

    Attributes:
        valid: the rows that passed, conformed to the contract's types (an Arrow table; a
            ``RecordBatchReader`` with ``validate(stream=True)``).
        quarantined: the rows set aside: source columns + ``_rules``, ``_reason``, ``_values``... .
        results: one :class:`~bubbles._events.QualityResult` per rule.
        written: the quarantine append (``None`` when nothing was set aside or no sink).
        dropped: duplicates dropped by ``dedup`` (counted, not kept).
    """

    valid: pa.Table
    quarantined: pa.Table
    results: list[QualityResult]
    written: QuarantineWrite | None = None
    dropped: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def result(self, rule: str) -> QualityResult:
        """The result of one rule, by name (``amount.range``)."""
        for r in self.results:
            if r.rule == rule:
                return r
        raise KeyError(f"no rule {rule!r}; rules: {', '.join(r.rule for r in self.results)}")


def _contract(contract: Contract | str) -> Contract:
    if isinstance(contract, Contract):
        return contract
    if isinstance(contract, str):
        from .yamlfile import load_contract

        return load_contract(contract)
    raise ConfigError(f"validate(): contract must be a Contract or the path of a YAML contract, got {contract!r}.")


def validate(
    data: Any,
    contract: Contract | str,
    *,
    references: Mapping[str, Any] | None = None,
    quarantine: Any = None,
    source: str | None = None,
    line_column: str | None = None,
    raise_on_fail: bool = True,
    mask_key: str | bytes | None = None,
    batch_size: int = 122_880,
    stream: bool = False,
) -> Validation:
    """Check ``data`` against ``contract`` in one DuckDB pass; split valid and quarantined rows.

    Args:
        data: an Arrow table or stream (``RecordBatchReader``), a DuckDB relation, a pandas or
            polars frame, or a Parquet path.
        contract: a :class:`Contract`, or the path of a YAML contract.
        references: the tables foreign keys point at, by the name the rule uses
            (``{"customers": customers}``): tables, streams, relations, frames or file paths.
        quarantine: where set-aside rows go: ``None`` for ``<quarantine_dir>/<contract name>``,
            a folder (Parquet dataset), ``"URL#table"`` (a database table), or ``False`` to only
            return them.
        source: the file or table the rows came from (kept with quarantined rows and results).
        line_column: an input column holding each row's line in the source (kept as ``_line``).
        raise_on_fail: raise :class:`QualityError` when a ``fail`` rule broke or a threshold was
            passed (else the failures are in ``Validation.failures``).
        mask_key: the key of ``hash`` masks, instead of the ``mask_key_secret`` secret.
        batch_size: rows per batch the result is split in.
        stream: return the valid rows as a ``RecordBatchReader`` (every rule is checked and the
            quarantine written before ``validate`` returns; for an Arrow table the valid rows are
            then filtered batch by batch as they are read, never copied whole).

    Example:
        >>> import bubbles, pyarrow as pa
        >>> from bubbles import Column, Contract
        >>> c = Contract("orders", columns=[Column("id", "bigint", primary_key=True), Column("amount", min=0)])
        >>> v = bubbles.validate(pa.table({"id": ["1", "2", "x"], "amount": [5, -1, 3]}), c, quarantine=False)
        >>> v.valid.to_pylist(), v.quarantined.column("_rules").to_pylist()
        ([{'id': 1, 'amount': 5}], ['amount.range', 'id.type'])
    """
    import duckdb

    from ..._context import current_task, native_work
    from ..transform import _register, _Sink

    c = _contract(contract)
    checked = _checked_dataset(data, source)
    if line_column is not None and not isinstance(line_column, str):
        raise ConfigError(f"validate(line_column={line_column!r}): give the name of a column.")
    sink = sink_for(quarantine, c.name)
    key = MaskKey(key=mask_key)
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        attributed = _Sink(current_task())
        table = _as_table(data)
        if table is not None:  # numbered, so the query can return only the rows that broke a rule
            table = table.append_column("__bq_row", _row_numbers(table.num_rows))
            con.register("__bq_data", table)
        else:
            _register(con, "__bq_data", data, attributed)
        relation = con.table("__bq_data")
        from .compile import needs_rescan

        if table is None and _is_stream_source(data) and needs_rescan(c):
            with native_work(con.interrupt):
                con.execute("CREATE TEMP TABLE __bq_input AS SELECT * FROM __bq_data")
        else:
            con.execute("CREATE VIEW __bq_input AS SELECT * FROM __bq_data")
        columns = [(n, str(t)) for n, t in zip(relation.columns, relation.types, strict=True) if n != "__bq_row"]
        refs = _register_references(con, c, references or {}, attributed)
        compiled = compile_contract(c, columns, references=refs, key=key,
                                    row_index="__bq_row" if table is not None else None)
        with native_work(con.interrupt):
            try:
                for statement in compiled.setup:
                    con.execute(statement)
                reader = con.sql(compiled.sql, params=compiled.params).to_arrow_reader(batch_size)
            except duckdb.Error as exc:
                raise _query_error(exc, c) from None
            if compiled.narrow and table is not None:
                outcome = _split_narrow(reader, compiled, c, table, line_column, lazy=stream)
            else:
                outcome = _split(reader, compiled, c, line_column)
    finally:
        con.close()
    validation = _conclude(outcome, compiled, c, sink=sink, source=source, raise_on_fail=raise_on_fail, stream=stream,
                           checked=checked)
    from .. import lineage

    lineage.copy_origin(validation.valid, data)  # the valid rows are the input's rows: the same origin
    return validation


def _checked_dataset(data: Any, source: str | None) -> tuple[str | None, str | None]:
    """The dataset ``data`` is (lineage naming): the one its reader read, else the file ``source`` names."""
    from ... import _naming
    from .. import lineage

    origin = lineage.origin_of(data)
    if origin is not None and len(origin.tables) == 1:
        return origin.tables[0]
    target = data if isinstance(data, str | os.PathLike) else source
    if target is not None and os.path.exists(os.fspath(target)):
        return _naming.file_dataset(os.fspath(target))
    return None, None


def _as_table(data: Any) -> pa.Table | None:
    """``data`` as an Arrow table when it is one (or a frame, a batch, a list of records); else ``None``."""
    import os

    import pyarrow as pa

    from ..files._common import to_arrow

    if isinstance(data, str | os.PathLike) or _is_stream_source(data):
        return None
    arrow = to_arrow(data, what="validate() data")
    return arrow if isinstance(arrow, pa.Table) else None


def _row_numbers(n: int) -> pa.Array:
    """0, 1, ..., n - 1 as int64 (without numpy)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not n:
        return pa.array([], pa.int64())
    return pc.subtract(pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), n)), 1)


def _is_stream_source(data: Any) -> bool:
    import pyarrow as pa

    if isinstance(data, pa.RecordBatchReader):
        return True
    module = type(data).__module__ or ""
    if module.startswith("duckdb"):
        return True  # a relation arrives as its result's stream
    if isinstance(data, pa.Table | pa.RecordBatch | list | str) or hasattr(data, "to_arrow"):
        return False
    if module.startswith(("pandas", "polars")):
        return False
    return hasattr(data, "__iter__") or hasattr(data, "__arrow_c_stream__")


def _register_references(con: Any, contract: Contract, given: Mapping[str, Any], sink: Any) -> dict[str, tuple[str, list[str]]]:
    from ..transform import _register

    out = {}
    needed = contract.references()
    for i, (name, value) in enumerate(given.items()):
        if name not in needed:
            continue
        registered = f"__bq_ref{i}"
        _register(con, registered, value, sink)
        out[name] = (registered, list(con.table(registered).columns))
    return out


def _query_error(exc: BaseException, contract: Contract) -> Exception:
    from ..._errors import DataError

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    hint = ("Check the custom checks' SQL (column names are the contract's, after conforming)."
            if contract.checks else "Check the contract's types and bounds against the data.")
    return DataError(f"Contract {contract.name!r}: DuckDB could not run the checks: {text}. {hint}", contract=contract.name)


@dataclass
class _Outcome:
    valid: list[Any]
    valid_schema: Any
    quarantined: list[Any]
    rows: int = 0
    failed: list[int] = field(default_factory=list)
    quarantined_by_rule: list[int] = field(default_factory=list)
    examples: list[list[str]] = field(default_factory=list)
    latest: Any = None
    dropped: int = 0
    lazy: Any = None  # (table, keep mask): the valid rows, filtered as they are read


def _tally(batch: pa.RecordBatch, names: list[str], compiled: Compiled, out: _Outcome) -> tuple[int, int]:
    """Count each rule's failures (and quarantined rows) in ``batch``, keep a few examples; returns (set aside, dropped)."""
    import pyarrow.compute as pc

    q, d = batch.column(names.index("__bq_q")), batch.column(names.index("__bq_d"))
    values = batch.column(names.index("__bq_values"))
    n_q = pc.sum(q).as_py() or 0
    n_d = pc.sum(d).as_py() or 0
    for i, rule in enumerate(compiled.rules):
        if not compiled.sql_flag[i]:
            continue
        flag = batch.column(names.index(f"__bq_f{i}"))
        failed = pc.sum(flag).as_py() or 0
        if not failed:
            continue
        out.failed[i] += failed
        if rule.action == "quarantine":
            out.quarantined_by_rule[i] += failed
        elif n_q:
            out.quarantined_by_rule[i] += pc.sum(pc.and_(flag, q)).as_py() or 0
        if len(out.examples[i]) < _EXAMPLES:
            shown = pc.filter(values, flag).slice(0, _EXAMPLES - len(out.examples[i])).to_pylist()
            out.examples[i].extend(s for s in shown if s)
    return n_q, n_d


def _outcome(compiled: Compiled, valid_schema: Any) -> _Outcome:
    n = len(compiled.rules)
    return _Outcome([], valid_schema, [], failed=[0] * n, quarantined_by_rule=[0] * n, examples=[[] for _ in range(n)])


def _split(reader: pa.RecordBatchReader, compiled: Compiled, contract: Contract, line_column: str | None) -> _Outcome:
    """Every row came back (conformed): split each batch into valid and set-aside rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    names = reader.schema.names
    output_idx = [names.index(n) for n in compiled.output]
    out = _outcome(compiled, pa.schema([reader.schema.field(i) for i in output_idx]))
    qi, di = names.index("__bq_q"), names.index("__bq_d")
    first = True
    for batch in reader:
        if not batch.num_rows:
            continue
        out.rows += batch.num_rows
        if first and contract.freshness is not None:
            out.latest = batch.column(names.index("__bq_latest"))[0].as_py()
            first = False
        n_q, n_d = _tally(batch, names, compiled, out)
        if not n_q and not n_d:
            out.valid.append(batch.select(output_idx))
            continue
        out.dropped += n_d
        q, d = batch.column(qi), batch.column(di)
        out.valid.append(batch.select(output_idx).filter(pc.invert(pc.or_(q, d))))
        if n_q:
            source = batch.filter(q)
            columns = {n: source.column(names.index(compiled.originals.get(n, n))) for n in compiled.source_columns}
            out.quarantined.append(_quarantined_rows(columns, source, names, line_column))
    return out


def _split_narrow(reader: pa.RecordBatchReader, compiled: Compiled, contract: Contract, table: pa.Table,
                  line_column: str | None, *, lazy: bool = False) -> _Outcome:
    """Only the rows that broke a rule came back, with their row index: filter the input in Arrow."""
    import pyarrow as pa
    import pyarrow.compute as pc

    names = reader.schema.names
    valid = table.select(compiled.output)
    out = _outcome(compiled, valid.schema)
    out.rows = table.num_rows
    hits = []
    for batch in reader:
        if batch.num_rows:
            _tally(batch, names, compiled, out)
            hits.append(batch)
    if contract.freshness is not None and out.rows:
        out.latest = pc.max(table.column(contract.freshness.column)).as_py()
    if not hits:
        out.valid.append(valid)
        return out
    found = pa.Table.from_batches(hits).combine_chunks()
    found = found.take(pc.sort_indices(found.column("__bq_row")))  # the input's order
    q, d = found.column("__bq_q"), found.column("__bq_d")
    out.dropped = pc.sum(d).as_py() or 0
    removed = found.filter(pc.or_(q, d)).column("__bq_row").combine_chunks()
    if not len(removed):
        out.valid.append(valid)
    elif lazy:
        out.lazy = (valid, _mask(table.num_rows, removed, marked=False))
    else:
        out.valid.append(_filter(valid, _mask(table.num_rows, removed, marked=False)))
    set_aside = found.filter(q)
    if set_aside.num_rows:
        # a mask, not take(): take() on chunked columns concatenates every chunk first
        rows = set_aside.column("__bq_row").combine_chunks()
        source = _filter(table.select(compiled.source_columns), _mask(table.num_rows, rows, marked=True))
        columns = {n: source.column(n) for n in compiled.source_columns}
        out.quarantined.append(_quarantined_rows(columns, set_aside, set_aside.schema.names, line_column))
    return out


def _mask(n: int, rows: pa.Array, *, marked: bool) -> pa.Array:
    """A boolean array of ``n``: ``marked`` at ``rows`` (sorted row numbers), the opposite elsewhere."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if hasattr(pc, "scatter"):  # Arrow >= 20: a linear pass, no hashing
        placed = pc.scatter(pa.repeat(pa.scalar(marked), len(rows)), rows, max_index=n - 1)
        return pc.fill_null(placed, not marked)
    hit = pc.is_in(pc.subtract(pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), n)), 1), value_set=rows)
    return hit if marked else pc.invert(hit)


def _filter(table: pa.Table, mask: pa.Array) -> pa.Table:
    """``table.filter(mask)``, a column per thread (Arrow's kernels release the GIL; Table.filter runs
    them one after the other)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa
    import pyarrow.compute as pc

    workers = min(table.num_columns, os.cpu_count() or 1)
    if workers < 2:
        return table.filter(mask)
    with ThreadPoolExecutor(workers, thread_name_prefix="bubbles-filter") as pool:
        columns = list(pool.map(lambda c: pc.filter(c, mask), table.columns))
    return pa.Table.from_arrays(columns, schema=table.schema)


def _quarantined_rows(columns: dict[str, Any], verdict: Any, names: list[str], line_column: str | None) -> pa.Table:
    """The source columns (raw values) and the verdict columns of the rows set aside."""
    import pyarrow as pa

    arrays, fields = [], []
    for n, col in columns.items():
        arrays.append(col)
        fields.append(pa.field(n, col.type))
    meta = {"_rules": "__bq_rules", "_reason": "__bq_reason", "_column": "__bq_columns", "_values": "__bq_values"}
    for m, n in meta.items():
        arrays.append(verdict.column(names.index(n)).cast(pa.string()))
        fields.append(pa.field(m, pa.string()))
    if line_column is not None and line_column in columns:
        arrays.append(columns[line_column].cast(pa.int64()))
        fields.append(pa.field("_line", pa.int64()))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _table_rule(rule: Rule, out: _Outcome, types: Mapping[str, str]) -> tuple[bool, str]:
    """Whether a table rule broke, and what it saw."""
    if rule.kind == "row_count":
        lo, hi = rule.params.get("min"), rule.params.get("max")
        broke = (lo is not None and out.rows < lo) or (hi is not None and out.rows > hi)
        return broke, f"rows {out.rows:,}"
    latest = out.latest
    if latest is None:
        return True, "no rows" if not out.rows else f"no {rule.columns[0]} values"
    cutoff = freshness_cutoff(rule, types.get(rule.columns[0], ""))
    try:
        broke = latest < cutoff
    except TypeError:
        broke = str(latest) < str(cutoff)
    return broke, f"latest {latest}"


def _lazy_filter(table: pa.Table, keep: pa.Array) -> pa.RecordBatchReader:
    import pyarrow as pa

    def batches() -> Any:
        offset = 0
        for batch in table.to_batches():
            yield batch.filter(keep.slice(offset, batch.num_rows))
            offset += batch.num_rows

    return pa.RecordBatchReader.from_batches(table.schema, batches())


def _conclude(out: _Outcome, compiled: Compiled, contract: Contract, *, sink: Sink | None, source: str | None,
              raise_on_fail: bool, stream: bool = False,
              checked: tuple[str | None, str | None] = (None, None)) -> Validation:
    import pyarrow as pa

    from ..._context import current_task, log_metric, record_event
    from ..._events import QualityResult

    parts = [b if isinstance(b, pa.Table) else pa.Table.from_batches([b]) for b in out.valid if b.num_rows]
    if not parts:
        valid = out.valid_schema.empty_table()
    elif len(parts) == 1:
        valid = parts[0]  # the input itself when nothing was set aside
    else:
        valid = pa.concat_tables(parts)
    if out.lazy is not None:
        valid = _lazy_filter(*out.lazy)
    elif stream:
        valid = pa.RecordBatchReader.from_batches(valid.schema, valid.to_batches())
    if out.quarantined:
        quarantined = pa.concat_tables(out.quarantined, promote_options="permissive")
    else:
        quarantined = _empty_quarantine(compiled, out)
    quarantined = complete(quarantined, source=source, contract=contract.name, pii=contract.pii_columns)
    types = compiled.types
    results: list[QualityResult] = []
    failures: list[tuple[Rule, QualityResult, str]] = []
    for i, rule in enumerate(compiled.rules):
        failed, observed = out.failed[i], None
        if rule.table_level:
            broke, observed = _table_rule(rule, out, types)
            failed = out.rows if broke else 0  # the batch as a whole (none, for an empty one)
        else:
            broke = failed > 0
        limit = rule.fail_above
        outcome = "passed"
        if broke:
            outcome = {"warn": "warned", "quarantine": "quarantined", "fail": "failed", "drop": "dropped"}[rule.action]
            tolerated = limit if limit is not None else (Threshold(rows=0) if rule.action == "fail" else None)
            if rule.table_level:
                pass  # a table rule has no share of rows to tolerate: its action decides
            elif tolerated is not None and tolerated.exceeded(failed, out.rows):
                outcome = "failed"
            elif rule.action == "fail":
                outcome = "warned"  # under its threshold: tolerated, counted
        if rule.table_level:
            set_aside = failed if rule.action == "quarantine" and broke else 0
        else:
            set_aside = out.quarantined_by_rule[i]
        result = QualityResult(
            contract=contract.name, rule=rule.name, check=rule.kind, column=", ".join(rule.columns) or None,
            action=rule.action, rows_checked=out.rows, rows_failed=failed,
            rows_quarantined=set_aside,
            outcome=outcome, observed=observed, examples=list(out.examples[i]), source=source,
            namespace=checked[0], name=checked[1],
        )
        results.append(result)
        if outcome == "failed":
            failures.append((rule, result, _limit_text(rule, limit)))
        elif outcome == "warned":
            log.warning("bubbles: contract %r: rule %s broke on %s of %s rows (%s)%s", contract.name, rule.name,
                        f"{failed:,}", f"{out.rows:,}", rule.action, _examples_text(result))
    if contract.fail_above is not None:
        limit = Threshold.parse(contract.fail_above, contract.name)
        total = quarantined.num_rows
        assert limit is not None
        passed_limit = limit.exceeded(total, out.rows)
        summary = QualityResult(contract=contract.name, rule="table.quarantine_limit", check="threshold", action="fail",
                                rows_checked=out.rows, rows_failed=total if passed_limit else 0, rows_quarantined=total,
                                outcome="failed" if passed_limit else "passed", observed=f"quarantined {total:,}",
                                source=source, namespace=checked[0], name=checked[1])
        results.append(summary)
        if passed_limit:
            rule = Rule("table.quarantine_limit", "threshold", (), "fail", limit)
            failures.append((rule, summary, f"its limit of {limit.describe()}"))
    written = None
    if sink is not None and quarantined.num_rows:
        written = append(sink, quarantined, source=source, contract=contract.name)
    if quarantined.num_rows:
        log_metric("rows_quarantined", quarantined.num_rows, add=True)
        log.info("bubbles: contract %r: %s of %s rows quarantined%s", contract.name, f"{quarantined.num_rows:,}",
                 f"{out.rows:,}", f" in {sink}" if sink is not None else "")
    if out.dropped:
        log_metric("rows_deduplicated", out.dropped, add=True)
    for r in results:
        record_event(r)
    messages = [_failure_message(contract, rule, r, limit_text, written, source) for rule, r, limit_text in failures]
    validation = Validation(valid, quarantined, results, written, out.dropped, messages)
    if messages and raise_on_fail:
        rule, r, _ = failures[0]
        ctx = current_task()
        others = ", ".join(x[1].rule for x in failures[1:])
        more = f" ({len(messages) - 1} more rule(s) failed too: {others}.)" if others else ""
        raise QualityError(messages[0] + more, contract=contract.name, rule=rule.name, failed=r.rows_failed,
                           checked=r.rows_checked, examples=list(r.examples), task=ctx.task if ctx else None, source=source)
    return validation


def _empty_quarantine(compiled: Compiled, out: _Outcome) -> pa.Table:
    import pyarrow as pa

    fields = [f for f in out.valid_schema if f.name in compiled.source_columns]
    fields += [pa.field(m, pa.string()) for m in ("_rules", "_reason", "_column", "_values")]
    return pa.schema(fields).empty_table()


def _limit_text(rule: Rule, limit: Threshold | None) -> str:
    if limit is not None:
        return f"its limit of {limit.describe()}"
    return "any row" if rule.action == "fail" else "its limit"


def _examples_text(r: QualityResult) -> str:
    return f"; examples: {', '.join(r.examples)}" if r.examples else ""


def _failure_message(contract: Contract, rule: Rule, r: QualityResult, limit_text: str, written: Any,
                     source: str | None) -> str:
    from ..._context import current_task

    ctx = current_task()
    where = f" in task {ctx.task!r}" if ctx else ""
    src = f" (source {source})" if source else ""
    pct = f" ({r.rows_failed / r.rows_checked:.2%})" if r.rows_checked else ""
    kept = f" The rows set aside are in {written.sink}." if written is not None else ""
    if rule.table_level:
        what = f"rule {rule.name!r} ({rule.describe()}, action {rule.action}) broke: {r.observed}"
        fix = ("Check that the source delivered what it should (a stale or short batch is not a row problem), "
               "or change the rule: action 'warn' only reports it.")
    elif rule.kind == "threshold":
        what = f"{r.rows_quarantined:,} of {r.rows_checked:,} rows were quarantined{pct}, more than {limit_text}"
        fix = ("Look at them (`bubbles quarantine show`), fix the source or the rules, or raise the contract's fail_above.")
    else:
        what = (f"rule {rule.name!r} ({rule.describe()}, action {rule.action}) broke on {r.rows_failed:,} of "
                f"{r.rows_checked:,} rows{pct}, more than {limit_text}")
        fix = ("Fix the data at its source, or change the rule: action 'quarantine' sets such rows aside, "
               "fail_above ('1%', 100) tolerates some.")
    shown = f" Examples: {', '.join(r.examples)}." if r.examples else ""
    return f"Contract {contract.name!r} failed{where}{src}: {what}.{shown}{kept} {fix}"


def check(
    contract: Contract | str,
    *,
    references: Mapping[str, Any] | None = None,
    quarantine: Any = None,
    source: str | None = None,
    line_column: str | None = None,
) -> Callable[..., Any]:
    """A task function that validates its input against ``contract`` and returns the valid rows.

    The function takes the data first and references by keyword, so a workflow can give it
    the foreign keys' tables from other tasks:
    ``wf.add_task(bubbles.check(orders), requires={"data": extract, "customers": customers})``.
    ``bubbles validate`` checks the contract against the steps upstream before any data is read.

    Example:
        >>> import bubbles
        >>> from bubbles import Column, Contract
        >>> wf = bubbles.Workflow("orders")
        >>> raw = wf.add_task(lambda: [{"id": 1}, {"id": None}], name="extract")
        >>> _ = wf.add_task(bubbles.check(Contract("orders", columns=[Column("id", nullable=False)]), quarantine=False),
        ...                 requires=[raw])
        >>> wf.run().tasks["check_orders"].result.num_rows
        1
    """
    c = _contract(contract)

    def check_contract(data: Any, **given: Any) -> Any:
        refs = {**(references or {}), **given}
        return validate(data, c, references=refs, quarantine=quarantine, source=source, line_column=line_column).valid

    check_contract.__name__ = check_contract.__qualname__ = f"check_{c.name.replace('-', '_').replace('.', '_')}"
    check_contract.__doc__ = f"Validate the input against contract {c.name!r}; return the valid rows."
    check_contract.__bubbles_contract__ = c  # type: ignore[attr-defined]
    check_contract.__bubbles_references__ = dict(references or {})  # type: ignore[attr-defined]
    return check_contract
