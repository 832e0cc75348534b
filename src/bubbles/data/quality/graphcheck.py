"""Contracts checked against a workflow's graph, before any data is read (``bubbles validate``).

A step made by :func:`~.validate.check` carries its contract. For each one this finds:

* what DuckDB finds in the contract alone: unknown types, regexes that do not compile, custom
  checks that do not parse (:func:`~.compile.check_contract`);
* a rule naming a column that the step upstream does not produce, when that step declares its
  columns — with :func:`produces`, or by being a check whose contract drops other columns;
* a foreign key whose reference table the step is not given (``requires={"customers": ...}``
  or ``check(references=...)``), or whose column the reference does not produce.

Example:
    >>> @produces("order_id", "amount")
    ... def extract(): ...
    >>> extract.__bubbles_columns__
    ('order_id', 'amount')
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from .contract import Contract

__all__ = ["check_graph", "contract_of", "produces"]


def produces(*columns: str) -> Callable[[Any], Any]:
    """Declare the columns a step's output has, so ``bubbles validate`` can check contracts downstream."""
    if not columns or not all(isinstance(c, str) and c for c in columns):
        from ..._errors import ConfigError

        raise ConfigError(f"produces() takes the column names, e.g. @produces('order_id', 'amount'), got {columns!r}.")

    def mark(fn: Any) -> Any:
        fn.__bubbles_columns__ = tuple(columns)
        return fn

    return mark


def _unwrap(fn: Any) -> Any:
    seen = 0
    while seen < 10:
        inner = getattr(fn, "func", None) or getattr(fn, "__wrapped__", None)
        if inner is None or inner is fn:
            return fn
        if getattr(fn, "__bubbles_contract__", None) is not None or getattr(fn, "__bubbles_columns__", None):
            return fn
        fn, seen = inner, seen + 1
    return fn


def contract_of(fn: Any) -> Contract | None:
    """The contract a check step carries (through ``functools.partial`` and decorators)."""
    c = getattr(_unwrap(fn), "__bubbles_contract__", None)
    return c if isinstance(c, Contract) else None


def _columns(fn: Any) -> tuple[str, ...] | None:
    """The columns a step's output has, when it says so (else ``None``: unknown)."""
    fn = _unwrap(fn)
    declared = getattr(fn, "__bubbles_columns__", None)
    if declared:
        return tuple(declared)
    c = contract_of(fn)
    if c is not None and c.extra_columns in ("drop", "error"):
        return tuple(col.name for col in c.columns)
    return None


def _ref_key(value: Any) -> str | None:
    return getattr(value, "key", None) if type(value).__name__ == "Ref" else None


def check_graph(graph: Any) -> list[str]:
    """Every problem of the graph's contracts, as messages naming the task (empty: fine)."""
    from .compile import check_contract

    problems: list[str] = []
    for node in graph.nodes.values():
        spec = getattr(node, "spec", None)
        c = contract_of(spec.fn) if spec is not None else None
        if c is None:
            continue
        where = f"Task {node.key!r}, contract {c.name!r}" + (f" ({c.source})" if c.source else "")
        problems += [f"Task {node.key!r}: {p}" for p in check_contract(c)]
        data = node.args[0] if node.args else node.kwargs.get("data")
        upstream = _ref_key(data)
        if upstream is not None and upstream in graph.nodes:
            up = graph.nodes[upstream]
            have = _columns(up.spec.fn) if up.spec is not None else None
            if have is not None:
                for col in sorted(c.referenced_columns() - set(have)):
                    close = difflib.get_close_matches(col, list(have), n=1)
                    hint = f" Did you mean {close[0]!r}?" if close else ""
                    problems.append(f"{where}: a rule names column {col!r}, which the step upstream, {upstream!r}, does not "
                                    f"produce (it produces: {', '.join(have)}).{hint} Fix the contract or the step.")
        given = dict(getattr(_unwrap(spec.fn), "__bubbles_references__", {}) or {}) if spec is not None else {}
        for name, value in node.kwargs.items():
            given.setdefault(name, value)
        for table, cols in sorted(c.references().items()):
            if table not in given:
                problems.append(f"{where}: a foreign key points at table {table!r}, which the task is not given. Give it: "
                                f"requires={{'data': ..., {table!r}: the task producing it}}, or check(..., "
                                f"references={{{table!r}: ...}}).")
                continue
            key = _ref_key(given[table])
            if key is not None and key in graph.nodes and graph.nodes[key].spec is not None:
                have = _columns(graph.nodes[key].spec.fn)
                for col in sorted(cols - set(have or cols)):
                    problems.append(f"{where}: the foreign key to {table}.{col} names a column that {key!r} does not produce "
                                    f"(it produces: {', '.join(have or ())}).")
    return problems
