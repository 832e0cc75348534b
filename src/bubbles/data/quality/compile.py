"""A contract compiled to one DuckDB query: every rule a boolean column, computed in one pass.

The query reads the input once (``__bq_input``: an Arrow table, a stream loaded into DuckDB,
or a relation's result) in three layers that DuckDB's optimizer folds into one pipeline:

1. **conform** (the temporary view ``__bq_conformed``, which DuckDB inlines wherever the query
   names it; a CTE named several times made it copy the input's columns): each column with a
   contract type is replaced by ``TRY_CAST(column AS type)``; its raw value stays beside it
   (``__bq_r<i>``), so a value that does not cast fails the ``type`` rule (raw not null, cast null) instead of becoming a null;
2. **rules**: one boolean per rule (``__bq_f<i>``, never null) over the conformed values.
   Rules over the whole batch are uncorrelated subqueries DuckDB computes once: the repeated
   values of a unique column (a ``GROUP BY ... HAVING count(*) > 1`` semi-join, which keeps
   rows streaming in order), a foreign key (an anti-join against the reference), the latest
   timestamp and the row count; ``dedup`` is a ``row_number()`` window;
3. **verdict**: ``__bq_q`` (set aside: a ``quarantine`` rule broke), ``__bq_d`` (a dropped
   duplicate), and, only for the rows that broke something (``CASE``, so valid rows cost
   nothing), the rules broken, the reasons, the offending values as JSON (``pii`` columns
   masked) and the raw source values of the columns the output changes.

Every value from the contract (accepted values, bounds, patterns, rule names, the HMAC key) is
a bound parameter; every identifier is quoted; custom checks are SQL the contract's author wrote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .contract import Contract, Rule
from .errors import ContractError
from .masking import MaskKey, mask_sql, quote

__all__ = ["Compiled", "check_contract", "compile_contract"]

INTERNAL = "__bq_"


@dataclass
class Compiled:
    """The query and what its columns mean."""

    sql: str
    params: dict[str, Any]
    rules: list[Rule]  # rule i is column __bq_f<i>
    sql_flag: list[bool]  # whether rule i has a flag column (table rules that cannot touch rows do not)
    output: list[str]  # the valid output's columns, in order
    originals: dict[str, str]  # output column -> column holding its raw value for quarantined rows
    source_columns: list[str]  # the input's columns (quarantined rows keep them)
    needs_rescan: bool  # a rule reads the input more than once (a stream must be loaded first)
    skipped: list[str] = field(default_factory=list)  # rules of absent optional columns
    types: dict[str, str] = field(default_factory=dict)  # the input's DuckDB type of each column
    narrow: bool = False  # the query returns only the rows that broke a rule, by their row index
    setup: list[str] = field(default_factory=list)  # statements to run before the query (its views)


def _param(params: dict[str, Any], value: Any) -> str:
    name = f"p{len(params)}"
    params[name] = value
    return f"${name}"


def needs_rescan(contract: Contract) -> bool:
    """Whether the query reads its input more than once (unique, primary key, freshness, row count)."""
    rules = contract.rules()
    return any(r.kind in ("unique", "primary_key", "freshness") or (r.kind == "row_count" and r.action == "quarantine")
               for r in rules)


def compile_contract(
    contract: Contract,
    columns: Sequence[tuple[str, str]],
    *,
    references: Mapping[str, tuple[str, Sequence[str]]] | None = None,
    key: MaskKey | None = None,
    now: datetime | None = None,
    row_index: str | None = None,
) -> Compiled:
    """Compile ``contract`` for an input with ``columns`` (``(name, DuckDB type)``).

    ``references`` maps a foreign key's table to ``(registered name, its columns)``. With
    ``row_index`` (a column of the registered input numbering its rows) and a contract that
    changes no value (no cast, no output mask), the query is *narrow*: it returns only the rows
    that broke a rule — their index, flags and reasons — and the valid output is the input
    filtered in Arrow, never copied through DuckDB.
    """
    key = key or MaskKey()
    refs = dict(references or {})
    names = [n for n, _ in columns]
    types = dict(columns)
    where = f"Contract {contract.name!r}"
    for n in names:
        if n.startswith(INTERNAL):
            raise ContractError(f"{where}: the input column {n!r} starts with {INTERNAL!r}, which bubbles keeps for itself. "
                                "Rename it before validating.", contract=contract.name)
    wanted = {c.name for c in contract.columns}
    missing = [c.name for c in contract.columns if c.required and c.name not in types]
    others = sorted(contract.referenced_columns() - wanted - set(types))
    if missing or others:
        from ..._errors import DataError

        absent = (missing or others)[0]
        import difflib

        close = difflib.get_close_matches(absent, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DataError(f"{where}: the input has no column {absent!r} (it has: {', '.join(names)}).{hint} Fix the contract, "
                        "or mark the column required: false if it may be absent.", contract=contract.name, column=absent)
    extras = [n for n in names if n not in wanted]
    if extras and contract.extra_columns == "error":
        from ..._errors import DataError

        raise DataError(f"{where}: the input has columns the contract does not declare: {', '.join(extras)} "
                        "(extra_columns: error). Declare them, or set extra_columns to keep or drop.", contract=contract.name)
    params: dict[str, Any] = {}
    index = {n: i for i, n in enumerate(names)}
    casts: dict[str, str] = {}
    for c in contract.columns:
        if c.name in types and c.type is not None and types[c.name].upper() != c.type.upper():
            casts[c.name] = c.type
    layer1 = "SELECT *"
    if casts:
        replaced = ", ".join(f"TRY_CAST({quote(n)} AS {t}) AS {quote(n)}" for n, t in casts.items())
        raws = ", ".join(f"{quote(n)} AS {quote(f'{INTERNAL}r{index[n]}')}" for n in casts)
        layer1 = f"SELECT * REPLACE ({replaced}), {raws}"
    conformed = f"{layer1} FROM __bq_input"

    def raw(name: str) -> str:
        return quote(f"{INTERNAL}r{index[name]}") if name in casts else quote(name)

    rules: list[Rule] = []
    flags: list[str | None] = []
    skipped: list[str] = []
    for rule in contract.rules():
        if any(col not in types for col in rule.columns):
            skipped.append(rule.name)
            continue
        if rule.kind == "type" and rule.columns[0] not in casts:
            rules.append(rule)
            flags.append("false")  # already of the type: nothing to cast, nothing fails
            continue
        rules.append(rule)
        flags.append(_flag(rule, raw, params, refs, contract, types, now))
    # -- layer 2: the flags -----------------------------------------------------------------
    flag_cols = [f"{INTERNAL}f{i}" for i in range(len(rules))]
    sql_flag = [f is not None for f in flags]
    layer2 = ", ".join(f"{f if f is not None else 'false'} AS {quote(n)}" for f, n in zip(flags, flag_cols, strict=True))
    quarantine_flags = [quote(n) for r, n, has in zip(rules, flag_cols, sql_flag, strict=True)
                        if has and r.action == "quarantine"]
    drop_flags = [quote(n) for r, n in zip(rules, flag_cols, strict=True) if r.kind == "dedup" and r.action == "drop"]
    any_flag = " OR ".join(quote(n) for n, has in zip(flag_cols, sql_flag, strict=True) if has) or "false"
    q = " OR ".join(quarantine_flags) or "false"
    d = " OR ".join(drop_flags) or "false"
    # -- layer 3: verdict, and what a broken row keeps --------------------------------------
    pii = {c.name: c for c in contract.columns if c.pii}
    output = [n for n in names if not (contract.extra_columns == "drop" and n not in wanted)]
    narrow = row_index is not None and not casts and not (contract.mask_output and pii)
    select = [quote(row_index)] if narrow and row_index is not None else []
    originals: dict[str, str] = {}
    for n in [] if narrow else output:
        expr = quote(n)
        if contract.mask_output and n in pii:
            kind, arg = pii[n].masking
            expr = mask_sql(quote(n), kind, arg, params, key)
        select.append(f"{expr} AS {quote(n)}")
    for n in [] if narrow else names:
        if n in casts or (contract.mask_output and n in pii):
            o = f"{INTERNAL}o{index[n]}"
            originals[n] = o
            select.append(f"CASE WHEN {quote(f'{INTERNAL}q')} THEN {raw(n)} END AS {quote(o)}")
    select += [quote(n) for n in flag_cols]
    rule_names = [f"CASE WHEN {quote(n)} THEN {_param(params, r.name)} END" for r, n in zip(rules, flag_cols, strict=True)]
    reasons = [f"CASE WHEN {quote(n)} THEN {_param(params, r.describe())} END" for r, n in zip(rules, flag_cols, strict=True)]
    per_column: dict[str, list[str]] = {}
    for r, n, has in zip(rules, flag_cols, sql_flag, strict=True):
        if has:
            for col in r.columns:
                per_column.setdefault(col, []).append(quote(n))
    entries = []
    column_names = []
    for col, fl in per_column.items():
        shown = f"CAST({raw(col)} AS VARCHAR)"
        if col in pii:
            kind, arg = pii[col].masking
            shown = mask_sql(raw(col), kind, arg, params, key)
        broke = " OR ".join(fl)
        entries.append(f"CASE WHEN {broke} THEN struct_pack(k := {_param(params, col)}, v := {shown}) END")
        column_names.append(f"CASE WHEN {broke} THEN {_param(params, col)} END")
    values = (f"to_json(map_from_entries(list_filter([{', '.join(entries)}], lambda x: x IS NOT NULL)))"
              if entries else "NULL")
    qcol = quote(f"{INTERNAL}q")
    select += [
        f"CASE WHEN {qcol} THEN concat_ws(', ', {', '.join(rule_names) or 'NULL'}) END AS {quote(INTERNAL + 'rules')}",
        f"CASE WHEN {qcol} THEN concat_ws('; ', {', '.join(reasons) or 'NULL'}) END AS {quote(INTERNAL + 'reason')}",
        f"CASE WHEN {qcol} THEN concat_ws(', ', {', '.join(column_names) or 'NULL'}) END AS {quote(INTERNAL + 'columns')}",
        f"CASE WHEN {any_flag} THEN {values} END AS {quote(INTERNAL + 'values')}",
        f"{quote(INTERNAL + 'd')}",
        qcol,
    ]
    latest = "NULL"
    if contract.freshness is not None and contract.freshness.column in types and not narrow:
        latest = f"(SELECT max({quote(contract.freshness.column)}) FROM __bq_conformed)"
    select.append(f"{latest} AS {quote(INTERNAL + 'latest')}")
    # a view, not a CTE: DuckDB inlines a view wherever it is named (a CTE named several times costs
    # it a copy of the input's columns, even NOT MATERIALIZED)
    setup = [f"CREATE OR REPLACE TEMP VIEW __bq_conformed AS {conformed}"]
    sql = (
        f"SELECT {', '.join(select)} FROM ("
        f"SELECT *, ({q}) AS {qcol}, ({d}) AND NOT ({q}) AS {quote(INTERNAL + 'd')} FROM ("
        f"SELECT *{', ' + layer2 if layer2 else ''} FROM __bq_conformed) AS __bq_flags) AS __bq_verdict"
        + (f" WHERE {any_flag}" if narrow else "")
    )
    return Compiled(sql=sql, params=params, rules=rules, sql_flag=sql_flag, output=output, originals=originals,
                    source_columns=names, needs_rescan=needs_rescan(contract), skipped=skipped, types=types,
                    narrow=narrow, setup=setup)


def _flag(rule: Rule, raw: Any, params: dict[str, Any], refs: Mapping[str, tuple[str, Sequence[str]]],
          contract: Contract, types: Mapping[str, str], now: datetime | None) -> str | None:
    """The SQL boolean that is true where ``rule`` breaks (never null), or None for a table rule
    that never touches rows (its action is not ``quarantine``)."""
    p = rule.params
    cols = [quote(c) for c in rule.columns]
    v = cols[0] if cols else ""
    if rule.kind == "type":
        return f"({raw(rule.columns[0])} IS NOT NULL AND {v} IS NULL)"
    if rule.kind == "not_null":
        return f"({raw(rule.columns[0])} IS NULL)"
    if rule.kind in ("unique", "primary_key"):
        present = " AND ".join(f"{c} IS NOT NULL" for c in cols)
        target = cols[0] if len(cols) == 1 else f"({', '.join(cols)})"
        dup = (f"{target} IN (SELECT {', '.join(cols)} FROM __bq_conformed WHERE {present} "
               f"GROUP BY ALL HAVING count(*) > 1)")
        flag = f"coalesce({present} AND {dup}, false)"
        if rule.kind == "primary_key":
            return f"({raw(rule.columns[0])} IS NULL OR {flag})"
        return f"({flag})"
    if rule.kind == "accepted_values":
        listed = ", ".join(_param(params, x) for x in p["values"])
        return f"coalesce({v} NOT IN ({listed}), false)"
    if rule.kind == "range":
        parts = []
        if p.get("min") is not None:
            parts.append(f"{v} < {_param(params, p['min'])}")
        if p.get("max") is not None:
            parts.append(f"{v} > {_param(params, p['max'])}")
        return f"coalesce({' OR '.join(parts)}, false)"
    if rule.kind == "regex":
        return f"coalesce(NOT regexp_matches(CAST({v} AS VARCHAR), {_param(params, p['pattern'])}), false)"
    if rule.kind == "foreign_key":
        table, column = p["table"], p["column"]
        if table not in refs:
            given = ", ".join(sorted(refs)) or "none"
            raise ContractError(
                f"Contract {contract.name!r}, rule {rule.name!r}: the foreign key points at table {table!r}, which was "
                f"not given (references given: {given}). Pass references={{{table!r}: its data}} to validate()/check() "
                "(a table, a stream, a relation or a file path).", contract=contract.name, rule=rule.name)
        registered, ref_columns = refs[table]
        if column not in ref_columns:
            raise ContractError(
                f"Contract {contract.name!r}, rule {rule.name!r}: the reference table {table!r} has no column {column!r} "
                f"(it has: {', '.join(ref_columns)}). Fix foreign_key.", contract=contract.name, rule=rule.name)
        return (f"coalesce({v} NOT IN (SELECT {quote(column)} FROM {quote(registered)} "
                f"WHERE {quote(column)} IS NOT NULL), false)")
    if rule.kind == "sql":
        return f"(NOT coalesce(({p['sql']}), true))"
    if rule.kind == "dedup":
        order = "DESC" if p["keep"] == "last" else "ASC"
        return (f"(row_number() OVER (PARTITION BY {', '.join(cols)} ORDER BY {quote(p['order_by'])} {order} NULLS LAST) > 1)")
    if rule.kind == "row_count":
        if rule.action != "quarantine":
            return None
        lo = p.get("min") if p.get("min") is not None else 0
        hi = p.get("max") if p.get("max") is not None else 2**62
        return (f"((SELECT count(*) FROM __bq_conformed) NOT BETWEEN {_param(params, lo)} AND {_param(params, hi)})")
    if rule.kind == "freshness":
        if rule.action != "quarantine":
            return None
        cutoff = freshness_cutoff(rule, types.get(rule.columns[0], ""), now)
        return f"coalesce((SELECT max({v}) FROM __bq_conformed) < {_param(params, cutoff)}, true)"
    raise ContractError(f"Contract {contract.name!r}: unknown rule kind {rule.kind!r}.")


def freshness_cutoff(rule: Rule, column_type: str, now: datetime | None = None) -> Any:
    """The oldest latest value a fresh batch may have (naive timestamps are taken as UTC)."""
    now = now or datetime.now(UTC)
    cutoff = now - rule.params["max_age"]
    kind = column_type.upper()
    if kind == "DATE":
        return cutoff.date()
    if "WITH TIME ZONE" in kind or kind == "TIMESTAMPTZ":
        return cutoff
    return cutoff.replace(tzinfo=None)


def check_contract(contract: Contract) -> list[str]:
    """Problems DuckDB finds in the contract without any data: unknown types, regexes that do not
    compile, custom checks that do not parse. Returns messages (empty: fine)."""
    import duckdb

    problems = []
    con = duckdb.connect()
    try:
        for c in contract.columns:
            if c.type is not None:
                try:
                    con.execute(f"SELECT CAST(NULL AS {c.type})").fetchall()
                except duckdb.Error as exc:
                    problems.append(f"column {c.name!r}: unknown type {c.type!r} ({_first_line(exc)}). "
                                    "Use a DuckDB type such as bigint, varchar, decimal(12,2), timestamp, date.")
            if c.regex is not None:
                try:
                    con.execute("SELECT regexp_matches('', $re)", {"re": c.regex}).fetchall()
                except duckdb.Error as exc:
                    problems.append(f"column {c.name!r}: the regex {c.regex!r} does not compile ({_first_line(exc)}). "
                                    "Patterns use RE2 syntax (no look-behind or back-references).")
        for ch in contract.checks:
            try:
                con.execute(f"SELECT ({ch.sql}) FROM (SELECT 1) WHERE false").fetchall()
            except duckdb.ParserException as exc:
                problems.append(f"check {ch.name!r}: the SQL does not parse ({_first_line(exc)}).")
            except duckdb.Error:
                pass  # names its columns: they exist only with data; parsing is what can be checked here
    finally:
        con.close()
    where = f" ({contract.source})" if contract.source else ""
    return [f"Contract {contract.name!r}{where}: {p}" for p in problems]


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
