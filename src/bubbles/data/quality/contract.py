"""Data contracts: what a batch of rows must look like, declared once in Python or YAML.

A :class:`Contract` lists :class:`Column` s (type, nullability, unique / primary key, accepted
values, range, regex, foreign key, a ``pii`` tag and a mask) and table rules (:class:`RowCount`,
:class:`Freshness`, :class:`Unique` over several columns, custom SQL :class:`Check` s, and
:class:`Dedup`). Every rule has an action — ``warn`` (count and log; the rows stay),
``quarantine`` (set the rows aside with the reason) or ``fail`` (fail the task) — and may have a
threshold, ``fail_above`` (``100`` rows or ``"1%"`` of the rows checked), past which the task
fails whatever the action.

:meth:`Contract.rules` expands a contract into :class:`Rule` s, one per check, each named
``column.check`` (``amount.range``) or ``table.check`` (``table.row_count``): the names that
appear in quarantined rows, events, metrics and messages. Construction checks what Python
alone can check; :func:`bubbles.data.quality.compile.check_contract` checks types and regexes
with DuckDB itself (``bubbles validate`` runs it before any data is read).

Example:
    >>> c = Contract("orders", columns=[Column("order_id", "bigint", primary_key=True),
    ...                                 Column("amount", "decimal(12,2)", min=0)])
    >>> [r.name for r in c.rules()]
    ['order_id.type', 'order_id.primary_key', 'amount.type', 'amount.range']
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from .errors import ContractError

__all__ = [
    "ACTIONS",
    "Check",
    "Column",
    "Contract",
    "Dedup",
    "Freshness",
    "RowCount",
    "Rule",
    "Threshold",
    "Unique",
    "parse_duration",
]

ACTIONS = ("warn", "quarantine", "fail")
MASKS = ("hash", "redact", "email", "card", "phone", "truncate", "round")
_COLUMN_CHECKS = ("type", "not_null", "unique", "primary_key", "accepted_values", "range", "regex", "foreign_key")
_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9_ ]*(\(\s*\d+\s*(,\s*\d+\s*)?\))?(\[\])?$")
# common Arrow spellings, so a contract may use the names bubbles' readers take
_ALIASES = {
    "int8": "TINYINT", "int16": "SMALLINT", "int32": "INTEGER", "int64": "BIGINT", "uint8": "UTINYINT",
    "uint16": "USMALLINT", "uint32": "UINTEGER", "uint64": "UBIGINT", "float32": "FLOAT", "float64": "DOUBLE",
    "string": "VARCHAR", "str": "VARCHAR", "text": "VARCHAR", "large_string": "VARCHAR", "bool": "BOOLEAN",
    "date32": "DATE", "timestamp[s]": "TIMESTAMP", "timestamp[ms]": "TIMESTAMP", "timestamp[us]": "TIMESTAMP",
    "timestamp[ns]": "TIMESTAMP", "int": "BIGINT", "float": "DOUBLE",
}


def _err(message: str, **fields: Any) -> ContractError:
    return ContractError(message, **fields)


def duckdb_type(text: str, where: str) -> str:
    """``text`` as the DuckDB type name the query casts to (Arrow spellings accepted)."""
    if not isinstance(text, str) or not text.strip():
        raise _err(f"{where}: the type must be a type name such as 'bigint' or 'decimal(12,2)', got {text!r}.", key="type")
    name = text.strip()
    alias = _ALIASES.get(name.lower())
    if alias:
        return alias
    if not _TYPE.match(name):
        raise _err(f"{where}: {text!r} is not a type name. Use a DuckDB type such as 'bigint', 'varchar', "
                   "'decimal(12,2)', 'timestamp' or 'date'.", key="type")
    return name.upper()


@dataclass(frozen=True)
class Threshold:
    """How many failing rows a rule tolerates before the task fails: a row count or a fraction."""

    rows: int | None = None
    fraction: float | None = None

    @classmethod
    def parse(cls, value: Any, where: str) -> Threshold | None:
        """``100`` (rows), ``"1%"`` or ``0.01`` (a fraction below 1), or ``None``."""
        if value is None or isinstance(value, Threshold):
            return value
        if isinstance(value, bool):
            raise _err(f"{where}: fail_above must be a number of rows or a percentage such as '1%', got {value!r}.",
                       key="fail_above")
        if isinstance(value, int) and value >= 0:
            return cls(rows=value)
        if isinstance(value, float) and 0 <= value < 1:
            return cls(fraction=value)
        if isinstance(value, str) and value.strip().endswith("%"):
            try:
                pct = float(value.strip()[:-1])
            except ValueError:
                pct = -1.0
            if 0 <= pct <= 100:
                return cls(fraction=pct / 100)
        raise _err(f"{where}: fail_above must be a number of rows (100), a percentage ('1%') or a fraction below 1 "
                   f"(0.01), got {value!r}.", key="fail_above")

    def exceeded(self, failed: int, checked: int) -> bool:
        if self.rows is not None:
            return failed > self.rows
        return checked > 0 and failed / checked > (self.fraction or 0.0)

    def describe(self) -> str:
        return f"{self.rows:,} rows" if self.rows is not None else f"{(self.fraction or 0) * 100:g} % of the rows"


def parse_duration(value: Any, where: str) -> timedelta:
    """``"2d"``, ``"12h"``, ``"30m"``, ``"45s"``, ``"1w"``, seconds, or a ``timedelta``."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return timedelta(seconds=value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(w|d|h|m|s)\s*", str(value))
    if not m:
        raise _err(f"{where}: max_age must be a duration such as '2d', '12h', '30m' or a number of seconds, got {value!r}.",
                   key="max_age")
    unit = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}[m.group(2)]
    return timedelta(**{unit: float(m.group(1))})


def parse_mask(value: Any, where: str) -> tuple[str, Any] | None:
    """``"email"``, ``"hash"``, ``"truncate:3"``, ``"truncate:month"``, ``"round:-2"``... as ``(kind, argument)``."""
    if value is None:
        return None
    text = str(value).strip().lower()
    kind, _, arg = text.partition(":")
    if kind not in MASKS:
        raise _err(f"{where}: unknown mask {value!r}. Use one of: hash, redact, email, card, phone, truncate:N "
                   "(characters) or truncate:day|month|year|hour (times), round:N (digits).", key="mask")
    if kind == "truncate":
        if arg in ("year", "quarter", "month", "week", "day", "hour", "minute"):
            return kind, arg
        if arg.isdigit() and int(arg) > 0:
            return kind, int(arg)
        raise _err(f"{where}: mask {value!r} needs a length or a unit: truncate:4, truncate:month.", key="mask")
    if kind == "round":
        try:
            return kind, int(arg or 0)
        except ValueError:
            raise _err(f"{where}: mask {value!r} needs a number of digits: round:2, round:-3.", key="mask") from None
    if arg:
        raise _err(f"{where}: mask {kind!r} takes no argument, got {value!r}.", key="mask")
    return kind, None


def _action(value: Any, where: str, *, allowed: Sequence[str] = ACTIONS) -> str:
    if value not in allowed:
        raise _err(f"{where}: action {value!r} is not one of {', '.join(allowed)}.", key="action")
    return str(value)


@dataclass(frozen=True)
class Rule:
    """One check of a contract, as compiled: its name, kind, columns, action and threshold.

    ``params`` holds what the kind needs (``values``, ``min``/``max``, ``pattern``, ``type``,
    ``reference``, ``sql``, ...).
    """

    name: str
    kind: str
    columns: tuple[str, ...]
    action: str
    fail_above: Threshold | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def table_level(self) -> bool:
        return self.kind in ("row_count", "freshness")

    def describe(self) -> str:
        """What the rule asks for, in words (the ``_reason`` of quarantined rows)."""
        p = self.params
        if self.kind == "type":
            return f"{self.name}: cannot be cast to {p['type']}"
        if self.kind == "not_null":
            return f"{self.name}: must not be null"
        if self.kind in ("unique", "primary_key"):
            what = "unique and not null" if self.kind == "primary_key" else "unique"
            return f"{self.name}: ({', '.join(self.columns)}) must be {what}"
        if self.kind == "accepted_values":
            shown = ", ".join(map(str, list(p["values"])[:8])) + (", ..." if len(p["values"]) > 8 else "")
            return f"{self.name}: must be one of {shown}"
        if self.kind == "range":
            lo = "" if p.get("min") is None else f">= {p['min']}"
            hi = "" if p.get("max") is None else f"<= {p['max']}"
            return f"{self.name}: must be {' and '.join(x for x in (lo, hi) if x)}"
        if self.kind == "regex":
            return f"{self.name}: must match {p['pattern']}"
        if self.kind == "foreign_key":
            return f"{self.name}: must exist in {p['table']}.{p['column']}"
        if self.kind == "row_count":
            least, most = p.get("min"), p.get("max")
            bounds = [f"at least {least:,}" if least is not None else "", f"at most {most:,}" if most is not None else ""]
            return f"{self.name}: the batch must have {' and '.join(b for b in bounds if b)} rows"
        if self.kind == "freshness":
            return f"{self.name}: the latest {self.columns[0]} must be newer than {p['max_age']}"
        if self.kind == "sql":
            return f"{self.name}: must satisfy {p['sql']}"
        if self.kind == "dedup":
            return f"{self.name}: duplicate of ({', '.join(self.columns)}), kept the {p['keep']} by {p['order_by']}"
        return self.name


@dataclass(frozen=True)
class Column:
    """The rules of one column.

    Args:
        name: the column.
        type: the type the column is conformed to (cast; a value that does not cast goes to
            quarantine, never to null). DuckDB names (``bigint``, ``decimal(12,2)``,
            ``timestamp``) or Arrow's (``int64``, ``string``, ``timestamp[s]``).
        nullable: ``False`` adds a ``not_null`` rule.
        unique: values must not repeat (every row holding a repeated value fails).
        primary_key: unique and not null.
        accepted_values: the values allowed.
        min, max: the range allowed (inclusive).
        regex: a pattern the text of each value must contain a match of (RE2 syntax; anchor
            with ``^...$``).
        foreign_key: ``"table.column"``: each value must exist there (``table`` is a reference
            given to ``validate(references=...)``, or a task output of that name).
        pii: personal data: always masked in quarantine samples, errors, logs, ``bubbles show``
            and the report; masked in the output too when the contract has ``mask_output``.
        mask: how it is masked: ``hash`` (HMAC-SHA256 with the key from the ``mask_key_secret``
            secret), ``redact``, ``email``, ``card``, ``phone``, ``truncate:N``/``truncate:month``,
            ``round:N``. A ``pii`` column without one is redacted.
        action: the action of this column's rules (default: the contract's).
        actions: per check, e.g. ``{"regex": "warn"}``.
        fail_above: threshold of this column's rules.
        required: ``False`` lets the column be absent (its rules are then skipped).
    """

    name: str
    type: str | None = None
    nullable: bool = True
    unique: bool = False
    primary_key: bool = False
    accepted_values: Sequence[Any] | None = None
    min: Any = None
    max: Any = None
    regex: str | None = None
    foreign_key: str | None = None
    pii: bool = False
    mask: str | None = None
    action: str | None = None
    actions: Mapping[str, str] = field(default_factory=dict)
    fail_above: Any = None
    required: bool = True

    def __post_init__(self) -> None:
        where = f"column {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise _err(f"A contract column needs a name, got {self.name!r}.", key="name")
        if self.type is not None:
            object.__setattr__(self, "type", duckdb_type(self.type, where))
        if self.action is not None:
            _action(self.action, where)
        for check, action in self.actions.items():
            if check not in _COLUMN_CHECKS:
                raise _err(f"{where}: actions names {check!r}, which is not a column check ({', '.join(_COLUMN_CHECKS)}).",
                           key="actions")
            _action(action, f"{where}, {check}")
        if self.accepted_values is not None:
            if isinstance(self.accepted_values, str | bytes) or not isinstance(self.accepted_values, Sequence | set):
                raise _err(f"{where}: accepted_values must be a list of values, got {self.accepted_values!r}.",
                           key="accepted_values")
            object.__setattr__(self, "accepted_values", tuple(self.accepted_values))
            if not self.accepted_values:
                raise _err(f"{where}: accepted_values is empty, so no row could pass. List the values allowed.",
                           key="accepted_values")
        if self.min is not None and self.max is not None:
            try:
                backwards = self.min > self.max
            except TypeError:
                raise _err(f"{where}: min {self.min!r} and max {self.max!r} cannot be compared.", key="min") from None
            if backwards:
                raise _err(f"{where}: min {self.min!r} is above max {self.max!r}.", key="min")
        if self.regex is not None and (not isinstance(self.regex, str) or not self.regex):
            raise _err(f"{where}: regex must be a non-empty pattern, got {self.regex!r}.", key="regex")
        if self.foreign_key is not None:
            table, dot, column = str(self.foreign_key).rpartition(".")
            if not dot or not table or not column:
                raise _err(f"{where}: foreign_key must be 'table.column', got {self.foreign_key!r}.", key="foreign_key")
        parse_mask(self.mask, where)
        Threshold.parse(self.fail_above, where)

    @property
    def masking(self) -> tuple[str, Any]:
        """How the column is masked where it is shown: its ``mask``, else redaction."""
        return parse_mask(self.mask, self.name) or ("redact", None)

    def action_for(self, check: str, default: str) -> str:
        return self.actions.get(check) or self.action or default


@dataclass(frozen=True)
class RowCount:
    """The batch must have at least ``min`` and at most ``max`` rows."""

    min: int | None = None
    max: int | None = None
    action: str = "fail"

    def __post_init__(self) -> None:
        for name, value in (("min", self.min), ("max", self.max)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise _err(f"row_count: {name} must be a whole number of rows >= 0, got {value!r}.", key=name)
        if self.min is None and self.max is None:
            raise _err("row_count needs min or max (or both).", key="row_count")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise _err(f"row_count: min {self.min} is above max {self.max}.", key="min")
        _action(self.action, "row_count")


@dataclass(frozen=True)
class Freshness:
    """The latest value of timestamp (or date) ``column`` must be at most ``max_age`` old."""

    column: str
    max_age: Any
    action: str = "fail"

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_age", parse_duration(self.max_age, "freshness"))
        _action(self.action, "freshness")


@dataclass(frozen=True)
class Unique:
    """The combination of ``columns`` must not repeat (rows with a null in them are not compared)."""

    columns: Sequence[str]
    action: str | None = None
    name: str | None = None
    fail_above: Any = None

    def __post_init__(self) -> None:
        if isinstance(self.columns, str) or not self.columns or not all(isinstance(c, str) for c in self.columns):
            raise _err(f"unique: columns must be a list of column names, got {self.columns!r}.", key="unique")
        object.__setattr__(self, "columns", tuple(self.columns))
        if self.action is not None:
            _action(self.action, "unique")
        Threshold.parse(self.fail_above, "unique")


@dataclass(frozen=True)
class Check:
    """A custom row rule: a DuckDB SQL boolean expression over the (conformed) columns.

    A row fails when the expression is false; ``NULL`` passes, as in a SQL ``CHECK``
    constraint. ``columns`` names the columns whose values are shown for a failing row.
    """

    name: str
    sql: str
    action: str | None = None
    columns: Sequence[str] = ()
    fail_above: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.name or ""):
            raise _err(f"check name {self.name!r} must be a word (letters, digits, _), e.g. 'paid_has_amount'.", key="name")
        if not isinstance(self.sql, str) or not self.sql.strip():
            raise _err(f"check {self.name!r}: sql must be a boolean SQL expression, e.g. \"amount > 0\".", key="sql")
        if ";" in self.sql:
            raise _err(f"check {self.name!r}: sql is one expression; it must not contain ';'.", key="sql")
        object.__setattr__(self, "columns", tuple(self.columns))
        if self.action is not None:
            _action(self.action, f"check {self.name!r}")
        Threshold.parse(self.fail_above, f"check {self.name!r}")


@dataclass(frozen=True)
class Dedup:
    """Keep one row per ``key``: the ``first`` or ``last`` by ``order_by``; the others are dropped
    (counted) or, with ``action="quarantine"``, set aside."""

    key: Sequence[str]
    order_by: str
    keep: str = "last"
    action: str = "drop"

    def __post_init__(self) -> None:
        if isinstance(self.key, str):
            object.__setattr__(self, "key", (self.key,))
        object.__setattr__(self, "key", tuple(self.key))
        if not self.key:
            raise _err("dedup: key must name at least one column.", key="key")
        if self.keep not in ("first", "last"):
            raise _err(f"dedup: keep must be 'first' or 'last', got {self.keep!r}.", key="keep")
        _action(self.action, "dedup", allowed=("drop", "quarantine"))


_EXTRA = ("keep", "drop", "error")


@dataclass(frozen=True)
class Contract:
    """What a batch of rows must look like (see the module docstring).

    Args:
        name: names the rules (``orders`` → ``orders: amount.range``), the default quarantine
            sink (``<quarantine_dir>/orders``) and the results.
        columns: the :class:`Column` rules.
        row_count, freshness: table rules.
        unique: combinations of columns that must not repeat (:class:`Unique` or lists of names).
        checks: custom SQL rules.
        dedup: keep one row per key.
        action: the default action of row rules (``quarantine``).
        fail_above: the task fails when more rows than this are quarantined in all.
        extra_columns: columns the contract does not name: ``keep`` (default), ``drop``, ``error``.
        mask_output: mask the ``pii`` columns in the valid output too (for loads and deliveries).
        source: where the contract was declared (set by :func:`load_contract`).
    """

    name: str
    columns: Sequence[Column] = ()
    row_count: RowCount | None = None
    freshness: Freshness | None = None
    unique: Sequence[Unique | Sequence[str]] = ()
    checks: Sequence[Check] = ()
    dedup: Dedup | None = None
    action: str = "quarantine"
    fail_above: Any = None
    extra_columns: str = "keep"
    mask_output: bool = False
    source: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", self.name or ""):
            raise _err(f"A contract name must be a word such as 'orders' (letters, digits, '_', '-', '.'), got {self.name!r}.",
                       key="contract")
        object.__setattr__(self, "columns", tuple(self.columns))
        object.__setattr__(self, "unique", tuple(u if isinstance(u, Unique) else Unique(u) for u in self.unique))
        object.__setattr__(self, "checks", tuple(self.checks))
        _action(self.action, f"contract {self.name!r}", allowed=("warn", "quarantine", "fail"))
        if self.extra_columns not in _EXTRA:
            raise _err(f"contract {self.name!r}: extra_columns must be one of {', '.join(_EXTRA)}, got {self.extra_columns!r}.",
                       key="extra_columns")
        Threshold.parse(self.fail_above, f"contract {self.name!r}")
        seen: set[str] = set()
        for c in self.columns:
            if not isinstance(c, Column):
                raise _err(f"contract {self.name!r}: columns must be Column(...) objects, got {c!r}.", key="columns")
            if c.name in seen:
                raise _err(f"contract {self.name!r}: column {c.name!r} is declared twice.", key=c.name)
            seen.add(c.name)
        names = [ch.name for ch in self.checks]
        if len(set(names)) != len(names):
            raise _err(f"contract {self.name!r}: two checks share a name ({names}).", key="checks")

    # -- what the contract says -------------------------------------------------------------
    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def unique_sets(self) -> tuple[Unique, ...]:
        """The multi-column uniqueness rules (``unique`` as given, made :class:`Unique`)."""
        return tuple(u for u in self.unique if isinstance(u, Unique))

    @property
    def pii_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.pii)

    def referenced_columns(self) -> set[str]:
        """Every input column a rule names (what an upstream step must produce)."""
        names = {c.name for c in self.columns if c.required}
        for u in self.unique_sets:
            names.update(u.columns)
        if self.freshness:
            names.add(self.freshness.column)
        if self.dedup:
            names.update(self.dedup.key)
            names.add(self.dedup.order_by)
        for ch in self.checks:
            names.update(ch.columns)
        return names

    def references(self) -> dict[str, set[str]]:
        """``{table: {columns}}`` the foreign keys point at."""
        out: dict[str, set[str]] = {}
        for c in self.columns:
            if c.foreign_key:
                table, _, column = c.foreign_key.rpartition(".")
                out.setdefault(table, set()).add(column)
        return out

    def rules(self) -> list[Rule]:
        """Every check, in a stable order: columns first (in their order), then table rules."""
        rules: list[Rule] = []
        default = self.action
        for c in self.columns:
            def add(check: str, params: dict[str, Any] | None = None, *, col: Column = c) -> None:
                action = col.action_for(check, default)
                rules.append(Rule(f"{col.name}.{check}", check, (col.name,), action,
                                  Threshold.parse(col.fail_above, col.name), params or {}))

            if c.type is not None:
                if c.action_for("type", default) == "warn":
                    raise _err(f"contract {self.name!r}, column {c.name!r}: a value that cannot be cast to {c.type} "
                               "is either set aside or fails the task; its action cannot be 'warn' (that would turn it into "
                               "null). Use 'quarantine' or 'fail'.", key="action")
                add("type", {"type": c.type})
            if c.primary_key:
                add("primary_key")
            else:
                if not c.nullable:
                    add("not_null")
                if c.unique:
                    add("unique")
            if c.accepted_values is not None:
                add("accepted_values", {"values": tuple(c.accepted_values)})
            if c.min is not None or c.max is not None:
                add("range", {"min": c.min, "max": c.max})
            if c.regex is not None:
                add("regex", {"pattern": c.regex})
            if c.foreign_key is not None:
                table, _, column = c.foreign_key.rpartition(".")
                add("foreign_key", {"table": table, "column": column})
        for u in self.unique_sets:
            name = u.name or "_".join(u.columns)
            rules.append(Rule(f"table.unique_{name}" if u.name is None else f"table.{u.name}", "unique", tuple(u.columns),
                              u.action or default, Threshold.parse(u.fail_above, "unique")))
        for ch in self.checks:
            rules.append(Rule(f"table.{ch.name}", "sql", tuple(ch.columns), ch.action or default,
                              Threshold.parse(ch.fail_above, ch.name), {"sql": ch.sql}))
        if self.dedup is not None:
            d = self.dedup
            rules.append(Rule("table.dedup", "dedup", tuple(d.key), d.action, None, {"order_by": d.order_by, "keep": d.keep}))
        if self.row_count is not None:
            rc = self.row_count
            rules.append(Rule("table.row_count", "row_count", (), rc.action, None, {"min": rc.min, "max": rc.max}))
        if self.freshness is not None:
            f = self.freshness
            rules.append(Rule("table.freshness", "freshness", (f.column,), f.action, None, {"max_age": f.max_age}))
        return rules
