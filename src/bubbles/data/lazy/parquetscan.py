"""A Parquet file or dataset read inside a plan: DuckDB scans the same ``pyarrow.dataset`` in place.

``read_parquet`` inside a task plans the read: the dataset is opened (its schema, partitions and
files are known; no data is read) and the identity of each file recorded. When the plan runs,
DuckDB scans that dataset as ``pyarrow`` would read it (same files, same partitioning, same
``filters=``), pushing its own projections and filters down into the scan, so the columns and
row groups a query does not need are never read. Read for Python, it is
``dataset.to_table(columns, filter)``, exactly what ``read_parquet`` returns.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .._fingerprint import digest
from .identity import FileIdentity
from .plan import Binder, Node

if TYPE_CHECKING:
    import pyarrow as pa

    from ..files._fs import Location

__all__ = ["ParquetScan", "plan_parquet"]


class ParquetScan(Node):
    """A planned read of a Parquet file or a directory of them."""

    step = "read_parquet"

    def __init__(self, loc: Location, source: str | list[str], columns: list[str] | None, expression: Any,
                 partitioning: str | None, base_dir: str | None, schema: pa.Schema, files: tuple[FileIdentity, ...],
                 planned_by: str | None) -> None:
        self.loc = loc
        self.source_paths = source
        self.columns = columns
        self.expression = expression
        self.partitioning = partitioning
        self.base_dir = base_dir
        self.schema = schema
        self.files = files
        self.planned_by = planned_by

    def source(self) -> str:
        return str(self.loc)

    def dataset(self) -> Any:
        import pyarrow.dataset as ds

        return ds.dataset(self.source_paths, filesystem=self.loc.fs, format="parquet", partitioning=self.partitioning,
                          partition_base_dir=self.base_dir, exclude_invalid_files=False)

    def check(self) -> None:
        for f in self.files:
            f.check(self.planned_by)
        planned = sorted(f.path for f in self.files)
        if self.loc.is_local and os.path.isdir(self.loc.path) and _parquet_files(self.loc.path) != planned:
            from .identity import SourceChangedError, where

            raise SourceChangedError(
                f"{where(self.planned_by).capitalize()} planned a read of the Parquet dataset {self.loc}, and files were "
                "added to it or removed since. Run the workflow again, or make the task that writes the dataset run "
                "before the task that reads it.", source=str(self.loc), planned_by=self.planned_by)

    def bind(self, b: Binder) -> str:
        from ..db.base import quote_ident

        if b.mode == "plan":
            return b.empty(self.schema)
        self.check()
        b.files.append(self)
        dataset = self.dataset()
        if self.expression is not None:
            dataset = dataset.filter(self.expression)
        name = b.register(dataset)
        return f"(SELECT {', '.join(quote_ident(c) for c in self.schema.names)} FROM {name})"

    def read(self) -> pa.Table:
        """The data as ``read_parquet`` returns it."""
        from .csvscan import attributed

        self.check()
        with attributed(self):
            return self.dataset().to_table(columns=self.columns, filter=self.expression)

    def fingerprint(self) -> str | None:
        if not self.loc.is_local:
            return None
        hashes = [f"{f.path}={f.content_hash()}" for f in self.files]
        return digest("read_parquet", str(self.loc), repr(self.columns), str(self.expression), str(self.partitioning),
                      self.schema.to_string(), *hashes)

    def keepable(self) -> bool:
        return self.loc.is_local


def _parquet_files(root: str) -> list[str]:
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
        found += [os.path.join(folder, n) for n in names if not n.startswith((".", "_"))]
    return sorted(found)


def plan_parquet(loc: Location, source: str | list[str], dataset: Any, columns: list[str] | None, expression: Any,
                 partitioning: str | None, base_dir: str | None) -> ParquetScan | None:
    """The planned read of an opened dataset, or ``None`` when it is read at once (object storage)."""
    from ..._context import current_task

    if not loc.is_local:
        return None
    schema = dataset.schema if not columns else _projected(dataset.schema, columns)
    if schema is None:
        return None
    files = tuple(FileIdentity.of(p) for p in dataset.files)
    ctx = current_task()
    return ParquetScan(loc, source, list(columns) if columns else None, expression, partitioning, base_dir, schema, files,
                       ctx.task if ctx is not None else None)


def _projected(schema: pa.Schema, columns: list[str]) -> pa.Schema | None:
    import pyarrow as pa

    if any(c not in schema.names for c in columns):
        return None  # the read says which column is missing, now
    return pa.schema([schema.field(c) for c in columns])
