"""Column lineage of a SQL query, derived from its text with sqlglot: which input columns each output column comes from.

:func:`query_lineage` parses the query in the given dialect, qualifies it against the input
tables' columns (so ``SELECT *`` and unqualified names resolve), and walks sqlglot's lineage
graph of every output column down to the base tables, through CTEs and subqueries. An output
column is an ``IDENTITY`` of an input column when every step on the way only references a
column (``SELECT a``, ``SELECT t.a AS b``, through a CTE); anything else (an expression, a cast,
an aggregate) is a ``TRANSFORMATION``.

A query sqlglot cannot parse (or qualify) still runs: its lineage is table-level, with a note
saying why. sqlglot is imported on first use (``pip install 'pybubbles[lineage]'``); without it
lineage is table-level too. Results are cached per query text, dialect and input columns.

Example:
    >>> q = query_lineage("WITH p AS (SELECT id, amount FROM orders) SELECT id, amount * 2 AS doubled FROM p",
    ...                   "duckdb", {"orders": ["id", "amount"]})
    >>> q.columns["doubled"]
    (('orders', 'amount', 'TRANSFORMATION'),)
    >>> q.tables
    (('orders',),)
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["QueryLineage", "query_lineage"]

IDENTITY = "IDENTITY"
TRANSFORMATION = "TRANSFORMATION"

# bubbles' dialect names -> sqlglot's
_DIALECTS = {"duckdb": "duckdb", "sqlite": "sqlite", "postgresql": "postgres", "postgres": "postgres"}


@dataclass(frozen=True)
class QueryLineage:
    """What a query reads and where each output column comes from.

    Attributes:
        tables: the base tables the query reads, each as its name parts (``("orders",)``,
            ``("shop", "public", "orders")``), lower-cased where the dialect folds names.
        columns: output column -> ``((table, column, transformation), ...)``; ``table`` is the
            last name part of one of ``tables`` (as the query's inputs are keyed).
        note: set when lineage is table-level only, saying why.
    """

    tables: tuple[tuple[str, ...], ...] = ()
    columns: Mapping[str, tuple[tuple[str, str, str], ...]] = field(default_factory=dict)
    note: str | None = None


def query_lineage(query: str, dialect: str, schemas: Mapping[str, Sequence[str]] | None = None) -> QueryLineage:
    """The lineage of ``query`` (see the module docstring); never raises for a bad query.

    Args:
        query: the SQL text.
        dialect: ``duckdb``, ``sqlite`` or ``postgresql``.
        schemas: the columns of the input tables the caller knows, by table name.
    """
    key = tuple(sorted((str(k).lower(), tuple(v)) for k, v in (schemas or {}).items()))
    return _cached(query, _DIALECTS.get(dialect, dialect), key)


@functools.lru_cache(maxsize=256)
def _cached(query: str, dialect: str, schemas: tuple[tuple[str, tuple[str, ...]], ...]) -> QueryLineage:
    try:
        import sqlglot
        from sqlglot import exp
    except ImportError:
        return QueryLineage(note="table-level only: sqlglot is not installed (pip install 'pybubbles[lineage]')")
    try:
        tree = sqlglot.parse_one(query, dialect=dialect)
    except Exception as exc:  # sqlglot's ParseError/TokenError, or whatever else a parser may raise on odd text
        return QueryLineage(note=f"table-level only: sqlglot cannot parse the query ({_first_line(exc)})")
    tables = _base_tables(tree, exp)
    try:
        columns = _columns(tree, dialect, dict(schemas), exp)
    except Exception as exc:  # qualification or lineage failed: keep what is known, the tables
        return QueryLineage(tables, note=f"table-level only: sqlglot cannot trace the columns ({_first_line(exc)})")
    return QueryLineage(tables, columns)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _base_tables(tree: Any, exp: Any) -> tuple[tuple[str, ...], ...]:
    """The tables a query reads, CTE names excluded."""
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    found: dict[tuple[str, ...], None] = {}
    for table in tree.find_all(exp.Table):
        name = table.name
        if not name or (not table.db and name.lower() in ctes):
            continue
        parts = tuple(p for p in (table.catalog, table.db, name) if p)
        found[parts] = None
    return tuple(found)


def _columns(
    tree: Any, dialect: str, schemas: dict[str, tuple[str, ...]], exp: Any
) -> dict[str, tuple[tuple[str, str, str], ...]]:
    from sqlglot.lineage import lineage
    from sqlglot.optimizer.qualify import qualify
    from sqlglot.optimizer.scope import build_scope

    schema: dict[str, Any] = {name: {c: "UNKNOWN" for c in cols} for name, cols in schemas.items()}
    qualified = qualify(tree, schema=schema or None, dialect=dialect, validate_qualify_columns=False,
                        identify=False, quote_identifiers=False)
    scope = build_scope(qualified)
    if scope is None:
        return {}
    nodes = lineage(None, qualified, schema, dialect=dialect, scope=scope, copy=False)
    out: dict[str, tuple[tuple[str, str, str], ...]] = {}
    for column, root in nodes.items():
        sources: dict[tuple[str, str, str], None] = {}
        _walk(root, True, sources, exp)
        out[column] = tuple(sources)
    return out


def _walk(node: Any, identity: bool, into: dict[tuple[str, str, str], None], exp: Any) -> None:
    if not node.downstream:
        source = node.source
        if isinstance(source, exp.Table) and source.name:
            into[(source.name, node.name.rsplit(".", 1)[-1].strip('"'), IDENTITY if identity else TRANSFORMATION)] = None
        return
    expression = node.expression
    inner = expression.this if isinstance(expression, exp.Alias) else expression
    step_is_reference = isinstance(inner, exp.Column)
    for child in node.downstream:
        _walk(child, identity and step_is_reference, into, exp)
