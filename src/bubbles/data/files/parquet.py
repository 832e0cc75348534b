"""Parquet files and Hive-partitioned Parquet datasets: read with push-down, write atomically, compact.

A dataset is a directory tree ``key=value/.../part-*.parquet``. Reads go through
``pyarrow.dataset``, so a column list and a row filter are pushed down: partitions that cannot
match are never opened, and row groups are skipped by their statistics. Writes build the whole
dataset under a hidden temporary name and publish it by rename (``mode="overwrite"``) or move
the new files in one by one (``mode="append"``; each file appears whole). :func:`compact` merges
the small files each append leaves behind.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..._errors import ConfigError, DataError
from .. import lineage
from ..lazy import LazyTable, is_lazy, wanted
from ..lazy.engine import restartable
from ..lazy.parquetscan import plan_parquet
from ..lazy.write import copies, copy_file
from ._atomic import atomic_dir, atomic_file, temp_name
from ._common import NOT_RETRIED, WrittenFile, as_output, count_read, count_written, counted, missing_file, schema_of, to_arrow
from ._fileset import publish_swap, remote_members
from ._fs import Location, locate

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["compact", "read_parquet", "write_parquet"]

_DEFAULT_TARGET = 128 << 20
_ROW_GROUP = 128 * 1024
_SAMPLE_ROWS = 16 * 1024
_DICTIONARY_MAX_RATIO = 0.2
_ZSTD_RATIO = 0.3  # typical on-disk / in-memory size of zstd Parquet, to turn bytes into rows per file


def read_parquet(path: str | os.PathLike[str], *, columns: Sequence[str] | None = None, filters: Any = None,
                 partitioning: str | None = "hive", batch_size: int | None = None,
                 storage_options: dict[str, Any] | None = None, output: str = "arrow", lazy: bool | None = None) -> Any:
    """Read a Parquet file or a (Hive-partitioned) directory of them.

    Inside a task (local files) the read is planned: the result is a
    :class:`~bubbles.data.lazy.LazyTable` that DuckDB scans in place where it is used (only the
    columns and row groups a query needs), or that reads itself in full when Python uses it.

    Args:
        path: a file, or a directory of ``.parquet`` files (local or fsspec URL).
        columns: project these columns; only they are read from disk. Partition keys count as columns.
        filters: rows to keep, pushed down to partitions and row-group statistics: a
            ``pyarrow.compute`` expression, or a list of ``(column, op, value)`` tuples (AND-ed;
            a list of such lists is OR-ed), e.g. ``[("country", "=", "DE"), ("amount", ">", 100)]``.
        partitioning: ``"hive"`` to read ``key=value`` directories as columns, ``None`` to not.
        batch_size: stream record batches of at most this many rows instead of one table.
        storage_options: passed to fsspec for URLs.
        output: ``"arrow"`` (default), ``"pandas"`` or ``"polars"`` for a frame; streams stay Arrow.
        lazy: plan the read (``True``) or read now (``False``); default: the ``lazy`` setting.

    Example:
        >>> import bubbles
        >>> de = bubbles.read_parquet("lake/orders", columns=["id", "amount"],
        ...                           filters=[("order_date", ">=", "2026-01-01")])  # doctest: +SKIP
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    loc = locate(path, storage_options)
    expression = _expression(filters)
    try:
        source: str | list[str] = loc.path
        members = None if loc.is_local else remote_members(loc)
        if members is not None:  # a dataset bubbles wrote on object storage: the files of its last committed set
            source = members
        dataset = ds.dataset(source, filesystem=loc.fs, format="parquet", partitioning=partitioning,
                             partition_base_dir=loc.path.rstrip("/") if members is not None else None,
                             exclude_invalid_files=False)
        if batch_size:
            scanner = dataset.scanner(columns=list(columns) if columns else None, filter=expression,
                                      batch_size=batch_size)
            return lineage.read_file(counted(scanner.to_reader()), loc, "parquet")
        if output == "arrow" and wanted(lazy):
            scan = plan_parquet(loc, source, dataset, list(columns) if columns else None, expression, partitioning,
                                loc.path.rstrip("/") if members is not None else None)
            if scan is not None:
                return lineage.read_file(LazyTable(scan), loc, "parquet")
        table = dataset.to_table(columns=list(columns) if columns else None, filter=expression)
    except FileNotFoundError:
        raise missing_file("Parquet path", loc) from None
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise _translate(exc, loc) from None
    count_read(table.num_rows, table.nbytes, files=dataset.files if loc.is_local else ())
    return lineage.read_file(as_output(table, output), loc, "parquet", table=table)


def _translate(exc: BaseException, loc: Location) -> DataError:
    text = str(exc)
    if "magic bytes" in text or "footer" in text or "Is this a 'parquet' file" in text:
        message = (f"{loc} is not a Parquet file (or is truncated): {text}. Check that the producer finished writing it and "
                   "that the path points at Parquet data.")
    elif "No match for FieldRef" in text or "not found" in text.lower():
        message = f"Reading Parquet {loc}: {text}. Check the column names in columns= and filters=."
    else:
        message = f"Reading Parquet {loc} failed: {text}."
    return DataError(f"{message} {NOT_RETRIED}", source=str(loc))


def _expression(filters: Any) -> Any:
    if filters is None:
        return None
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if isinstance(filters, pc.Expression):
        return filters
    try:
        return pq.filters_to_expression(filters)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"filters={filters!r} is not a pyarrow expression nor a list of (column, op, value) "
                          f"tuples: {exc}") from None


def write_parquet(data: Any, path: str | os.PathLike[str], *, partition_by: Sequence[str] | None = None,
                  compression: str = "zstd", compression_level: int | None = None,
                  target_file_size: int | None = None, row_group_size: int | None = None, mode: str = "overwrite",
                  storage_options: dict[str, Any] | None = None) -> list[WrittenFile]:
    """Write ``data`` as a Parquet file, or as a Hive-partitioned dataset directory.

    Args:
        data: an Arrow table or record-batch stream (written as it flows), pandas/polars frame...
        path: a file path, or with ``partition_by`` / ``target_file_size`` a directory.
        partition_by: columns to partition by (``country=DE/order_date=2026-01-02/part-*.parquet``).
        compression: ``"zstd"`` (default), ``"snappy"``, ``"gzip"``, ``"lz4"``, ``"none"``.
        target_file_size: approximate bytes per file in a dataset (estimated from the data's size in
            memory; files land near, not exactly at, the target).
        row_group_size: rows per row group.
        mode: ``"overwrite"`` replaces the file or dataset atomically; ``"append"`` adds files to an
            existing dataset (each new file appears whole).

    Returns:
        The files written, each with ``path``, ``rows`` and ``bytes``.

    Example:
        >>> import bubbles
        >>> bubbles.write_parquet(orders, "lake/orders", partition_by=["order_date"])  # doctest: +SKIP
    """
    if mode not in ("overwrite", "append"):
        raise ConfigError(f"write_parquet mode={mode!r}: use 'overwrite' or 'append'.")
    loc = locate(path, storage_options)
    if mode == "append" and loc.exists() and not loc.isdir():
        raise ConfigError(f"write_parquet(mode='append'): {loc} is a file; appending needs a dataset directory. "
                          "Write to a directory (with partition_by or not), or use mode='overwrite'.")
    compression = compression or "none"
    single = not partition_by and not target_file_size and mode == "overwrite" and not loc.isdir()

    def write() -> tuple[list[WrittenFile], Location | None]:
        if single and is_lazy(data) and not data.is_read and copies(data.schema, loc, compression):
            return [copy_file(data.plan, data.schema, loc, compression, compression_level, row_group_size)], None
        arrow = to_arrow(data, what="write_parquet data")
        if single:
            return [_write_file(arrow, loc, compression, compression_level, row_group_size)], None
        return _write_dataset(arrow, loc, list(partition_by or []), compression, compression_level, target_file_size,
                              row_group_size, mode), loc  # one dataset, the directory

    written, dataset = restartable(data, write)
    count_written(written)
    lineage.files_written(data, written, "parquet", dataset=dataset)
    return written


def _dictionary_columns(sample: pa.Table | pa.RecordBatch) -> list[str]:
    """Columns worth dictionary encoding, judged on a sample: few distinct values.

    Arrow tries a dictionary for every column and gives up only once the dictionary page is full;
    on ids, e-mails or free text that attempt costs more CPU than the whole zstd write.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    head = sample.slice(0, _SAMPLE_ROWS)
    rows = max(head.num_rows, 1)
    chosen = []
    for name, column in zip(head.schema.names, head.columns, strict=True):
        try:
            distinct = pc.count_distinct(column).as_py()
        except (NotImplementedError, ValueError, TypeError, pa.ArrowException):  # nested types: Arrow decides
            chosen.append(name)
            continue
        if distinct <= _DICTIONARY_MAX_RATIO * rows:
            chosen.append(name)
    return chosen


def _write_file(data: pa.Table | pa.RecordBatchReader, loc: Location, compression: str, level: int | None,
                row_group_size: int | None) -> WrittenFile:
    with atomic_file(loc) as tmp:
        rows = write_file_at(tmp, data, compression, level, row_group_size)
        size = os.path.getsize(tmp)
    return WrittenFile(str(loc), rows, size, schema_of(data.schema))


def write_file_at(tmp: str, data: pa.Table | pa.RecordBatchReader, compression: str, level: int | None,
                  row_group_size: int | None) -> int:
    """Write one Parquet file at the local path ``tmp`` (a temporary name, published by the caller); returns its rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(data, pa.Table):
        pq.write_table(data, tmp, compression=compression, compression_level=level,
                       row_group_size=row_group_size or 1024 * 1024, use_dictionary=_dictionary_columns(data))
        return data.num_rows
    reader = data
    group_rows = row_group_size or _ROW_GROUP
    rows = 0
    pending: list[pa.RecordBatch] = []
    buffered = 0
    writer: pq.ParquetWriter | None = None
    try:
        # streams often come in small batches; a row group per batch would make a slow, badly compressed
        # file, so batches are gathered into row groups of ``group_rows`` (memory: one row group)
        for batch in reader:
            pending.append(batch)
            buffered += batch.num_rows
            rows += batch.num_rows
            if buffered >= group_rows:
                group = pa.Table.from_batches(pending, reader.schema)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, reader.schema, compression=compression, compression_level=level,
                                              use_dictionary=_dictionary_columns(group))
                writer.write_table(group, row_group_size=group_rows)
                pending, buffered = [], 0
        if pending or writer is None:
            group = pa.Table.from_batches(pending, reader.schema)
            if writer is None:
                writer = pq.ParquetWriter(tmp, reader.schema, compression=compression, compression_level=level,
                                          use_dictionary=_dictionary_columns(group))
            writer.write_table(group, row_group_size=group_rows)
    finally:
        if writer is not None:
            writer.close()
    return rows


def _write_dataset(arrow: Any, loc: Location, partition_by: list[str], compression: str, level: int | None,
                   target_file_size: int | None, row_group_size: int | None, mode: str) -> list[WrittenFile]:
    import pyarrow as pa
    import pyarrow.dataset as ds

    missing = [c for c in partition_by if c not in arrow.schema.names]
    if missing:
        raise ConfigError(f"write_parquet partition_by={partition_by}: no column(s) {missing}; "
                          f"the data has {arrow.schema.names}.")
    max_rows = 0
    if target_file_size:
        max_rows = _rows_for_bytes(arrow, target_file_size)
    fmt = ds.ParquetFileFormat()
    opts = fmt.make_write_options(compression=compression, compression_level=level)
    token = secrets.token_hex(4)
    found: list[tuple[str, int]] = []

    def visit(written: Any) -> None:
        found.append((written.path, written.metadata.num_rows if written.metadata is not None else 0))

    kwargs: dict[str, Any] = {}
    if max_rows:
        kwargs["max_rows_per_file"] = max_rows
        kwargs["max_rows_per_group"] = min(max_rows, row_group_size or 1 << 20)
        kwargs["min_rows_per_group"] = min(kwargs["max_rows_per_group"], 64 * 1024)
    elif row_group_size:
        kwargs["max_rows_per_group"] = row_group_size
    with atomic_dir(loc, replace=mode == "overwrite") as tmp:
        try:
            ds.write_dataset(arrow, tmp, format=fmt, file_options=opts,
                             partitioning=partition_by or None, partitioning_flavor="hive" if partition_by else None,
                             basename_template=f"part-{token}-{{i}}.parquet", existing_data_behavior="overwrite_or_ignore",
                             file_visitor=visit, max_partitions=100_000, **kwargs)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise DataError(f"Writing Parquet dataset {loc} failed: {exc}", source=str(loc)) from exc
        files = [(os.path.relpath(p, tmp), rows, os.path.getsize(p)) for p, rows in found]
    sep = os.sep if loc.is_local else "/"
    columns = schema_of(arrow.schema)
    return [WrittenFile(str(loc).rstrip("/") + sep + rel.replace(os.sep, sep), rows, size, columns)
            for rel, rows, size in files]


def _rows_for_bytes(arrow: Any, target: int) -> int:
    import pyarrow as pa

    if isinstance(arrow, pa.Table) and arrow.num_rows:
        per_row = max(arrow.nbytes / arrow.num_rows, 1.0)
    else:
        per_row = 100.0  # a stream: no size known up front
    return max(1, int(target / (per_row * _ZSTD_RATIO)))


def compact(path: str | os.PathLike[str], *, target_file_size: int = _DEFAULT_TARGET, min_files: int = 2,
            compression: str = "zstd") -> dict[str, int]:
    """Merge the small files of a local Parquet dataset, directory by directory.

    In each directory holding at least ``min_files`` files smaller than ``target_file_size``,
    those files are rewritten into as few files as fit the target, under hidden temporary names;
    then one journal (the commit point, see :mod:`._fileset`) says: move the merged files in,
    remove the small ones. A kill before the journal leaves the small files; after it, the next
    write to the dataset (or ``bubbles clean``) finishes the swap, so no row is read twice once
    it has run. Schedule it when no writer appends to the same partitions.

    Returns:
        ``{"directories": ..., "files_before": ..., "files_after": ..., "rows": ...}``.

    Example:
        >>> import bubbles
        >>> bubbles.compact("lake/orders", target_file_size=64 << 20)  # doctest: +SKIP
        {'directories': 31, 'files_before': 744, 'files_after': 31, 'rows': 2500000}
    """
    import pyarrow.parquet as pq

    loc = locate(path)
    if not loc.is_local:
        raise ConfigError(f"compact({loc}): only local datasets are compacted for now; run it where the files live.")
    if not os.path.isdir(loc.path):
        raise DataError(f"compact({loc}): not a dataset directory.", source=str(loc))
    stats = {"directories": 0, "files_before": 0, "files_after": 0, "rows": 0}
    for root, dirs, files in os.walk(loc.path):
        dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
        parquet = sorted(os.path.join(root, f) for f in files if f.endswith(".parquet") and not f.startswith((".", "_")))
        small = [p for p in parquet if os.path.getsize(p) < target_file_size]
        stats["files_before"] += len(parquet)
        if len(small) < min_files:
            stats["files_after"] += len(parquet)
            continue
        stats["directories"] += 1
        merged = list(_merge(small, root, target_file_size, compression))  # (temporary, final) pairs
        stats["rows"] += sum(pq.ParquetFile(tmp).metadata.num_rows for tmp, _final in merged)
        publish_swap(loc.path, merged, small)
        stats["files_after"] += len(parquet) - len(small) + len(merged)
    return stats


def _merge(files: list[str], directory: str, target: int, compression: str) -> Iterator[tuple[str, str]]:
    import pyarrow.parquet as pq

    schema = pq.read_schema(files[0])
    token = secrets.token_hex(4)
    group: list[str] = []
    size = 0
    index = 0
    for path in files:
        group.append(path)
        size += os.path.getsize(path)
        if size >= target:
            yield _merge_group(group, directory, f"compacted-{token}-{index}.parquet", schema, compression)
            group, size, index = [], 0, index + 1
    if group:
        yield _merge_group(group, directory, f"compacted-{token}-{index}.parquet", schema, compression)


def _merge_group(group: list[str], directory: str, name: str, schema: Any, compression: str) -> tuple[str, str]:
    import pyarrow.parquet as pq

    final = os.path.join(directory, name)
    tmp = temp_name(final)
    with pq.ParquetWriter(tmp, schema, compression=compression) as writer:
        for path in group:
            pf = pq.ParquetFile(path)
            for i in range(pf.num_row_groups):
                writer.write_table(pf.read_row_group(i).cast(schema))
    return tmp, final
