"""Plans: what a lazy table is made of, and how a plan becomes one DuckDB statement.

A plan is a tree of nodes. Leaves are reads — a CSV file (:mod:`.csvscan`), a Parquet file or
dataset (:mod:`.parquetscan`), a database query (:mod:`.dbscan`), a path DuckDB reads itself,
an Arrow table already in memory — and inner nodes are ``bubbles.sql`` queries (:class:`Query`)
over named inputs. Every node knows its Arrow schema (found when it was planned, without
reading the data) and the task that planned it.

A :class:`Binder` puts a plan into one DuckDB connection as the text of one relation: a query
node becomes ``WITH <input> AS (<input's relation>), ... SELECT * FROM (<its query>)``, so the
inputs' names in the query are its inputs and nothing else; objects DuckDB scans in place
(Arrow tables, streams, datasets) are registered under names of their own; the bound
parameters of every level are collected in text order. A plan that cannot be written as one
statement (named parameters at two levels) raises :class:`Uncomposable`, and ``bubbles.sql``
then runs eagerly, as it always did.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._fingerprint import digest

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ArrowLeaf", "Binder", "Node", "PathLeaf", "Query", "Uncomposable"]


class Uncomposable(Exception):
    """The plan cannot be written as one DuckDB statement (see the module docstring)."""


class Node(ABC):
    """One step of a plan. Subclasses set ``schema`` and ``planned_by`` and implement :meth:`bind`."""

    schema: pa.Schema
    planned_by: str | None = None
    used: bool = False  # a plan holding this node ran (or its data was read for Python)
    rows: int | None = None  # rows this node's plan produced when it last ran whole into a consumer (a writer)
    step = "read"  # what the step is, for `bubbles show`: read_csv, sql, read_sql, ...

    def parts(self) -> tuple[Node, ...]:
        return ()

    def walk(self) -> Iterator[Node]:
        yield self
        for part in self.parts():
            yield from part.walk()

    @abstractmethod
    def bind(self, b: Binder) -> str:
        """The text of this node's relation in ``b``'s connection (a name or a parenthesised query)."""

    def source(self) -> str:
        """What it reads, for messages (a path, a table, a query)."""
        return ""

    def fingerprint(self) -> str | None:
        """A fingerprint of what the plan would read and compute, or ``None`` if it cannot be known cheaply."""
        return None

    def keepable(self) -> bool:
        """Whether the plan itself may be kept for resume: it reads only files whose identity it knows."""
        return False

    def check(self) -> None:
        """Raise if what the plan reads is no longer as planned (:class:`~.identity.SourceChangedError`)."""
        for part in self.parts():
            part.check()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("used", None)
        return state


class Binder:
    """Puts a plan into one DuckDB connection (see the module docstring).

    ``mode`` is ``"plan"`` (schemas only: reads are bound as empty tables, nothing is read),
    ``"run"`` (the plan runs as one statement; CSV files are parsed by DuckDB under guards) or
    ``"stream"`` (the result is handed out as a stream that cannot start over: CSV files are read
    by the bubbles reader).
    """

    def __init__(self, con: Any, mode: str, sink: Any = None) -> None:
        self.con = con
        self.mode = mode
        self.sink = sink  # the task consuming the result (stream reads are attributed to it)
        self.params: list[Any] = []
        self.named: dict[str, Any] | None = None
        self.guarded: list[Any] = []  # CSV leaves DuckDB parses in this statement: their guards may stop it
        self.files: list[Any] = []  # FileIdentity of every file read, checked before and after
        self.keep: list[Any] = []  # what was registered (alive until the statement is done)
        self._memo: dict[int, str] = {}
        self._count = 0

    def name(self) -> str:
        self._count += 1
        return f"__bubbles_{self._count}"

    def register(self, obj: Any) -> str:
        """Register ``obj`` (a table, a stream, a dataset) under a new name; returns the quoted name."""
        from ..db.base import quote_ident

        name = self.name()
        self.con.register(name, obj)
        self.keep.append(obj)
        return quote_ident(name)

    def empty(self, schema: pa.Schema) -> str:
        """An empty table of ``schema`` (how reads are bound while planning)."""
        return self.register(schema.empty_table())

    def relation(self, node: Node, *, memo: bool = True) -> str:
        if memo and id(node) in self._memo:
            return self._memo[id(node)]
        text = node.bind(self)
        if memo:
            self._memo[id(node)] = text
        return text

    def add_params(self, params: Sequence[Any] | Mapping[str, Any] | None) -> None:
        if params is None:
            return
        if isinstance(params, Mapping):
            if self.params or self.named is not None:
                raise Uncomposable("named parameters in a query whose inputs have parameters too")
            self.named = dict(params)
            return
        if self.named is not None:
            raise Uncomposable("positional parameters in a query over an input with named parameters")
        self.params.extend(params)

    def bound_params(self) -> Any:
        if self.named is not None:
            return self.named
        return self.params or None


class ArrowLeaf(Node):
    """An Arrow table already in memory (or a lazy table already read for Python)."""

    step = "table"

    def __init__(self, table: pa.Table, planned_by: str | None = None) -> None:
        self.table = table
        self.schema = table.schema
        self.planned_by = planned_by

    def bind(self, b: Binder) -> str:
        return b.register(self.table)

    def source(self) -> str:
        return f"an Arrow table of {self.table.num_rows:,} rows"


_READERS = {".parquet": "read_parquet", ".pq": "read_parquet", ".csv": "read_csv", ".tsv": "read_csv",
            ".json": "read_json", ".ndjson": "read_json", ".jsonl": "read_json"}


class PathLeaf(Node):
    """A local file (or Parquet directory) given to ``bubbles.sql`` by path: DuckDB reads it itself."""

    step = "path"

    def __init__(self, path: str, schema: pa.Schema, planned_by: str | None) -> None:
        self.path = path
        self.schema = schema
        self.planned_by = planned_by

    @staticmethod
    def relation_of(con: Any, path: str) -> Any:
        """The DuckDB relation reading ``path``, as ``bubbles.sql`` always read paths (``None``: not a readable kind)."""
        p = Path(path)
        suffix = "".join(s for s in p.suffixes if s in _READERS) or p.suffix
        reader = "read_parquet" if p.is_dir() else _READERS.get(suffix)
        if reader is None:
            return None
        source = str(p / "**" / "*.parquet") if p.is_dir() else str(p)
        if reader == "read_parquet":
            return con.read_parquet(source, hive_partitioning=p.is_dir())
        return getattr(con, reader)(source)

    def bind(self, b: Binder) -> str:
        from ..db.base import quote_ident

        relation = self.relation_of(b.con, self.path)
        name = b.name()
        relation.create_view(name)
        b.keep.append(relation)
        return quote_ident(name)

    def source(self) -> str:
        return self.path

    def fingerprint(self) -> str | None:
        return None  # a directory or a file DuckDB reads: not fingerprinted here (a task over it reruns)


class Query(Node):
    """A ``bubbles.sql`` query over named inputs."""

    step = "sql"

    def __init__(self, query: str, params: Any, inputs: dict[str, Node], schema: pa.Schema | None,
                 planned_by: str | None, settings: dict[str, Any] | None = None) -> None:
        self.query = query.strip().rstrip(";").rstrip()
        self.params = params
        self.inputs = inputs
        self.schema = schema  # type: ignore[assignment]  # set by the planner right after
        self.planned_by = planned_by
        self.settings = settings or {}  # threads, memory_limit asked of this query

    def parts(self) -> tuple[Node, ...]:
        return tuple(self.inputs.values())

    def bind(self, b: Binder) -> str:
        from ..db.base import quote_ident

        ctes = [f"{quote_ident(name)} AS ({_select(b.relation(node))})" for name, node in self.inputs.items()]
        b.add_params(self.params)
        head = f"WITH {', '.join(ctes)} " if ctes else ""
        return f"({head}SELECT * FROM (\n{self.query}\n) AS __bubbles_query)"

    def source(self) -> str:
        return " ".join(self.query.split())[:120]

    def fingerprint(self) -> str | None:
        parts = [f"{name}={node.fingerprint()}" for name, node in sorted(self.inputs.items())]
        if any(p.endswith("=None") for p in parts):
            return None
        return digest("sql", self.query, repr(self.params), *parts)

    def keepable(self) -> bool:
        return _plain(self.params) and all(node.keepable() for node in self.inputs.values())


def _select(relation: str) -> str:
    """A relation's text as a query: a name becomes ``SELECT * FROM name``; a parenthesised query stays."""
    return relation[1:-1] if relation.startswith("(") else f"SELECT * FROM {relation}"


def _plain(params: Any) -> bool:
    """Whether ``params`` are plain values that may be kept with a plan (no objects, nothing large)."""
    values = params.values() if isinstance(params, Mapping) else (params or ())
    return all(v is None or (isinstance(v, bool | int | float | str) and (not isinstance(v, str) or len(v) < 4096))
               for v in values)


def is_local_path(value: Any) -> bool:
    from ..files._fs import is_url

    return isinstance(value, str | os.PathLike) and not is_url(os.fspath(value))
