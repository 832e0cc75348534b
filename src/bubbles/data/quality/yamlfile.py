"""Contracts in YAML: the same :class:`~.contract.Contract`, kept beside the pipeline.

```yaml
contract: orders
action: quarantine            # the default action of row rules
fail_above: 5%                # fail the task when more rows than this are quarantined
columns:
  order_id: {type: bigint, primary_key: true}
  email:    {type: varchar, pii: true, mask: email}
  amount:   {type: "decimal(12,2)", min: 0, max: 10000}
  status:   {accepted_values: [paid, shipped, refunded], action: warn}
  customer_id: {type: bigint, foreign_key: customers.customer_id}
  currency: {regex: "^[A-Z]{3}$"}
row_count: {min: 1, action: fail}
freshness: {column: ordered_at, max_age: 2d, action: warn}
unique:
  - [customer_id, ordered_at]
checks:
  - {name: paid_has_amount, sql: "status <> 'paid' OR amount > 0"}
dedup: {key: [order_id], order_by: ordered_at, keep: last}
```

Every mistake names the file, the line and the key (with the nearest known key when it looks
like a typo), e.g. ``orders.yaml, line 7, key 'acepted_values' (column 'status'): unknown key.
Did you mean 'accepted_values'?``
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .contract import Check, Column, Contract, Dedup, Freshness, RowCount, Unique
from .errors import ContractError

__all__ = ["contract_from_yaml", "load_contract"]

_TOP = {"contract", "description", "action", "fail_above", "extra_columns", "mask_output", "columns", "row_count",
        "freshness", "unique", "checks", "dedup"}
_COLUMN = {"type", "nullable", "unique", "primary_key", "accepted_values", "min", "max", "regex", "foreign_key", "pii",
           "mask", "action", "actions", "fail_above", "required", "description"}
_ROW_COUNT = {"min", "max", "action"}
_FRESHNESS = {"column", "max_age", "action"}
_UNIQUE = {"columns", "action", "name", "fail_above"}
_CHECK = {"name", "sql", "action", "columns", "fail_above", "description"}
_DEDUP = {"key", "order_by", "keep", "action"}


class _Doc:
    """The parsed YAML and, beside it, the node tree that knows each key's line."""

    def __init__(self, text: str, source: str) -> None:
        import yaml

        self.source = source
        try:
            self.node = yaml.compose(text, Loader=yaml.SafeLoader)
            self.data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            problem = getattr(exc, "problem", None) or str(exc)
            raise ContractError(f"{source}{f', line {line}' if line else ''}: not valid YAML: {problem}. Fix the syntax "
                                "(quote values holding ':' or '#').", source=source, line=line) from None

    def error(self, node: Any, message: str, key: str | None = None) -> ContractError:
        line = node.start_mark.line + 1 if node is not None else None
        where = f"{self.source}, line {line}" if line else self.source
        if key:
            where += f", key {key!r}"
        return ContractError(f"{where}: {message}", source=self.source, line=line, key=key)


def _child(node: Any, key: str) -> tuple[Any, Any]:
    """The key node and the value node of ``key`` in mapping ``node``."""
    for k, v in getattr(node, "value", ()) or ():
        if getattr(k, "value", None) == key:
            return k, v
    return None, None


def _mapping(doc: _Doc, node: Any, value: Any, allowed: set[str], what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise doc.error(node, f"{what} must be a mapping of keys ({', '.join(sorted(allowed))}), got {value!r}.")
    for key in value:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else f" Known keys: {', '.join(sorted(allowed))}."
            knode, _ = _child(node, str(key))
            raise doc.error(knode or node, f"unknown key in {what}.{hint}", key=str(key))
    return value


def _build(doc: _Doc, node: Any, what: str, make: Callable[..., Any], **kwargs: Any) -> Any:
    """``make(**kwargs)``; a ContractError it raises is re-raised naming the line of the key at fault."""
    try:
        return make(**kwargs)
    except ContractError as exc:
        key = getattr(exc, "key", None)
        knode, _ = _child(node, key) if key else (None, None)
        message = exc.message
        raise doc.error(knode or node, f"{message} (in {what})", key=key if knode is not None else None) from None
    except TypeError as exc:
        raise doc.error(node, f"{what}: {exc}.") from None


def contract_from_yaml(text: str, source: str = "<contract>") -> Contract:
    """A :class:`Contract` from YAML text (``source`` names it in errors)."""
    doc = _Doc(text, source)
    root, data = doc.node, doc.data
    top = _mapping(doc, root, data, _TOP, "the contract")
    if "contract" not in top:
        raise doc.error(root, "the contract has no name: add `contract: NAME` at the top.", key="contract")
    columns = []
    _, cols_node = _child(root, "columns")
    raw_columns = top.get("columns") or {}
    if not isinstance(raw_columns, dict):
        raise doc.error(cols_node, "columns must be a mapping of column name to its rules, e.g. `order_id: {type: bigint}`.",
                        key="columns")
    for name, spec in raw_columns.items():
        knode, vnode = _child(cols_node, str(name))
        options = _mapping(doc, vnode, spec, _COLUMN, f"column {name!r}")
        options = {k: v for k, v in options.items() if k != "description"}
        columns.append(_build(doc, vnode or knode, f"column {name!r}", Column, name=str(name), **options))

    def section(key: str, allowed: set[str], make: Callable[..., Any]) -> Any:
        if top.get(key) is None:
            return None
        _, vnode = _child(root, key)
        options = _mapping(doc, vnode, top[key], allowed, key)
        return _build(doc, vnode, key, make, **options)

    row_count = section("row_count", _ROW_COUNT, RowCount)
    freshness = section("freshness", _FRESHNESS, Freshness)
    dedup = section("dedup", _DEDUP, Dedup)
    unique = []
    _, unode = _child(root, "unique")
    for i, item in enumerate(top.get("unique") or []):
        inode = unode.value[i] if unode is not None else None
        if isinstance(item, dict):
            unique.append(_build(doc, inode, "unique", Unique, **_mapping(doc, inode, item, _UNIQUE, "unique")))
        else:
            unique.append(_build(doc, inode, "unique", Unique, columns=item))
    checks = []
    _, cnode = _child(root, "checks")
    for i, item in enumerate(top.get("checks") or []):
        inode = cnode.value[i] if cnode is not None else None
        options = _mapping(doc, inode, item, _CHECK, "a check")
        options = {k: v for k, v in options.items() if k != "description"}
        checks.append(_build(doc, inode, f"check {options.get('name', i)!r}", Check, **options))
    rest = {k: top[k] for k in ("action", "fail_above", "extra_columns", "mask_output") if k in top}
    return _build(doc, root, "the contract", Contract, name=top["contract"], columns=columns, row_count=row_count,
                  freshness=freshness, unique=unique, checks=checks, dedup=dedup, source=source, **rest)


def load_contract(path: str | os.PathLike[str]) -> Contract:
    """Read a contract from a YAML file.

    Example:
        >>> from bubbles.data.quality import load_contract
        >>> orders = load_contract("contracts/orders.yaml")  # doctest: +SKIP
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContractError(f"Contract file {p} does not exist. Check the path (relative paths are from {Path.cwd()}).",
                            source=str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(f"Contract file {p} cannot be read: {exc}.", source=str(p)) from None
    return contract_from_yaml(text, str(p))
