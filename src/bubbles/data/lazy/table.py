"""``LazyTable``: a table that has not been read yet, read where it is used.

What a reader or ``bubbles.sql`` returns inside a task: the plan of the read or query (see
:mod:`.plan`). Handed to ``bubbles.sql`` or a writer, the plan becomes part of theirs and the
whole chain runs as one DuckDB statement; used from Python (``.num_rows``, ``.column("x")``,
``.to_pandas()``, ``pa.table(t)``...), it is read once, in full, and the table kept: it is never
half-consumed, and two consumers never see two different reads.

It behaves like the ``pyarrow.Table`` it stands for, with two differences: ``isinstance(t,
pa.Table)`` is false (call :meth:`LazyTable.to_arrow` for the table itself), and the methods not
listed here are not forwarded (``to_arrow()`` first). ``schema`` and ``column_names`` are known
without reading anything.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ... import _deferred
from .plan import ArrowLeaf, Node

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["LazyTable", "is_lazy"]


def is_lazy(value: Any) -> bool:
    return isinstance(value, LazyTable)


class LazyTable:
    """A planned read or query (see the module docstring).

    Example:
        >>> import bubbles, pyarrow as pa
        >>> orders = bubbles.read_csv("orders.csv", lazy=True)  # doctest: +SKIP
        >>> orders.column_names  # doctest: +SKIP
        ['id', 'amount']
        >>> orders.num_rows  # reads the file, once  # doctest: +SKIP
        3
    """

    __bubbles_lazy__ = True

    def __init__(self, node: Node, *, origin: Any = None, inputs: tuple[LazyTable, ...] = (), made: bool = True) -> None:
        self._node = node
        self._table: pa.Table | None = None
        self._lock = threading.Lock()
        self._origin = origin
        self._inputs = inputs  # the lazy tables its plan is made of (handed on with it)
        if made:
            _deferred.made(self)

    # -- what is known without reading ------------------------------------------------------------
    @property
    def schema(self) -> pa.Schema:
        """The columns and their types (known without reading)."""
        return self._table.schema if self._table is not None else self._node.schema

    @property
    def column_names(self) -> list[str]:
        return list(self.schema.names)

    @property
    def num_columns(self) -> int:
        return len(self.schema)

    @property
    def plan(self) -> Node:
        """The plan (its root node)."""
        return self._node

    @property
    def is_read(self) -> bool:
        """Whether the table has been read (and is kept)."""
        return self._table is not None

    def explain(self) -> str:
        """The plan, one step per line: what each step reads or computes, and which task planned it."""
        lines: list[str] = []

        def walk(node: Node, depth: int) -> None:
            who = f" (planned by task {node.planned_by!r})" if node.planned_by else ""
            lines.append(f"{'  ' * depth}{node.step} {node.source()}{who}")
            for part in node.parts():
                walk(part, depth + 1)

        walk(self._node, 0)
        return "\n".join(lines)

    def __repr__(self) -> str:
        node = self._node
        columns = ", ".join(f"{f.name}: {f.type}" for f in self.schema)
        state = f"read ({self._table.num_rows:,} rows)" if self._table is not None else "not read yet"
        who = f", planned by task {node.planned_by!r}" if node.planned_by else ""
        return f"<bubbles.LazyTable {node.step} {node.source()} [{columns}]{who}, {state}>"

    # -- reading ------------------------------------------------------------------------------------
    def to_arrow(self) -> pa.Table:
        """The table: read (once; kept) if it has not been."""
        table = self._table
        if table is not None:
            return table
        with self._lock:
            if self._table is None:
                from .. import lineage
                from .engine import materialize

                table = materialize(self._node)
                lineage.remember(table, self.__bubbles_origin__)
                self._table = table
        return self._table  # type: ignore[return-value]

    def read_all(self) -> pa.Table:
        """The table (as ``RecordBatchReader.read_all``)."""
        return self.to_arrow()

    def node_for_plan(self) -> Node:
        """What a plan that uses this table reads: the table if it was read, else its plan."""
        if self._table is not None:
            return ArrowLeaf(self._table, self._node.planned_by)
        return self._node

    # -- the pyarrow.Table it stands for ----------------------------------------------------------------
    @property
    def num_rows(self) -> int:
        """The rows. After the plan ran whole into a writer, the rows that run produced (nothing is read again)."""
        if self._table is None and self._node.rows is not None:
            return self._node.rows
        return self.to_arrow().num_rows

    @property
    def nbytes(self) -> int:
        return self.to_arrow().nbytes

    @property
    def shape(self) -> tuple[int, int]:
        return self.to_arrow().shape

    @property
    def columns(self) -> list[pa.ChunkedArray]:
        return self.to_arrow().columns

    def __len__(self) -> int:
        return self.num_rows

    def __getitem__(self, key: Any) -> Any:
        return self.to_arrow()[key]

    def __eq__(self, other: object) -> bool:
        return self.equals(other)

    __hash__ = None  # type: ignore[assignment]

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        """The Arrow C stream of the table (``pa.table(t)``, ``polars.from_arrow(t)``, DuckDB...)."""
        return self.to_arrow().__arrow_c_stream__(requested_schema)

    def column(self, i: Any) -> pa.ChunkedArray:
        return self.to_arrow().column(i)

    def field(self, i: Any) -> pa.Field:
        return self.schema.field(i)

    def itercolumns(self) -> Iterator[pa.ChunkedArray]:
        return self.to_arrow().itercolumns()

    def select(self, columns: Any) -> pa.Table:
        return self.to_arrow().select(columns)

    def drop_columns(self, columns: Any) -> pa.Table:
        return self.to_arrow().drop_columns(columns)

    def drop(self, columns: Any) -> pa.Table:
        return self.to_arrow().drop_columns(columns)

    def filter(self, mask: Any, null_selection_behavior: str = "drop") -> pa.Table:
        return self.to_arrow().filter(mask, null_selection_behavior)

    def slice(self, offset: int = 0, length: int | None = None) -> pa.Table:
        return self.to_arrow().slice(offset, length)

    def take(self, indices: Any) -> pa.Table:
        return self.to_arrow().take(indices)

    def sort_by(self, sorting: Any, **kwargs: Any) -> pa.Table:
        return self.to_arrow().sort_by(sorting, **kwargs)

    def group_by(self, keys: Any, use_threads: bool = True) -> Any:
        return self.to_arrow().group_by(keys, use_threads=use_threads)

    def join(self, right_table: Any, keys: Any, *args: Any, **kwargs: Any) -> pa.Table:
        right = right_table.to_arrow() if isinstance(right_table, LazyTable) else right_table
        return self.to_arrow().join(right, keys, *args, **kwargs)

    def cast(self, target_schema: Any, safe: bool | None = None, options: Any = None) -> pa.Table:
        return self.to_arrow().cast(target_schema, safe=safe, options=options)

    def combine_chunks(self) -> pa.Table:
        return self.to_arrow().combine_chunks()

    def rename_columns(self, names: Any) -> pa.Table:
        return self.to_arrow().rename_columns(names)

    def append_column(self, field_: Any, column: Any) -> pa.Table:
        return self.to_arrow().append_column(field_, column)

    def add_column(self, i: int, field_: Any, column: Any) -> pa.Table:
        return self.to_arrow().add_column(i, field_, column)

    def set_column(self, i: int, field_: Any, column: Any) -> pa.Table:
        return self.to_arrow().set_column(i, field_, column)

    def remove_column(self, i: int) -> pa.Table:
        return self.to_arrow().remove_column(i)

    def replace_schema_metadata(self, metadata: Any = None) -> pa.Table:
        return self.to_arrow().replace_schema_metadata(metadata)

    def equals(self, other: Any, check_metadata: bool = False) -> bool:
        if isinstance(other, LazyTable):
            other = other.to_arrow()
        import pyarrow as pa

        if not isinstance(other, pa.Table):
            return False
        return self.to_arrow().equals(other, check_metadata=check_metadata)

    def to_batches(self, max_chunksize: int | None = None) -> list[pa.RecordBatch]:
        return self.to_arrow().to_batches(max_chunksize)

    def to_reader(self, max_chunksize: int | None = None) -> pa.RecordBatchReader:
        return self.to_arrow().to_reader(max_chunksize)

    def to_pandas(self, **kwargs: Any) -> pd.DataFrame:
        return self.to_arrow().to_pandas(**kwargs)

    def to_pylist(self) -> list[dict[str, Any]]:
        return self.to_arrow().to_pylist()

    def to_pydict(self) -> dict[str, list[Any]]:
        return self.to_arrow().to_pydict()

    def __getattr__(self, name: str) -> Any:
        # only for a clear message: nothing is forwarded through here
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(
            f"'LazyTable' has no attribute {name!r}. A LazyTable forwards the common pyarrow.Table methods; for "
            f"this one, read the table first: t.to_arrow().{name}"
        )

    # -- the deferred-value protocol (bubbles._deferred) -------------------------------------------------
    @property
    def __bubbles_used__(self) -> bool:
        return self._table is not None or self._node.used

    def __bubbles_resolve__(self) -> pa.Table:
        return self.to_arrow()

    def __bubbles_parts__(self) -> tuple[LazyTable, ...]:
        return self._inputs

    def __bubbles_size__(self) -> tuple[int | None, int | None]:
        table = self._table
        return (table.num_rows, table.nbytes) if table is not None else (None, None)

    @property
    def __bubbles_fingerprint__(self) -> str | None:
        return self._node.fingerprint() if self._node.keepable() else None

    def __bubbles_keep__(self) -> LazyTable | None:
        """What resume keeps of it: the plan alone (small), if the plan reads only files it can check."""
        if not self._node.keepable():
            return None
        return LazyTable(self._node, origin=self._origin, made=False)

    def __bubbles_check__(self) -> None:
        """Raise unless every file the plan reads is as it was planned (a kept plan is then stale)."""
        self._node.check()

    @property
    def __bubbles_origin__(self) -> Any:
        """Where its columns come from (lineage), carried with the plan across processes."""
        return self._origin

    # -- pickling: the plan travels (it is planned again on the other side), or the table if it was read
    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (self._node, self._table, self._origin))


def _restore(node: Node, table: Any, origin: Any) -> LazyTable:
    lazy = LazyTable(node, origin=origin, made=False)
    lazy._table = table
    return lazy
