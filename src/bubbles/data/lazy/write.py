"""Writing a plan's result with DuckDB's own writers, inside the plan's statement.

``write_parquet`` of a lazy table to one local file runs ``COPY (<plan>) TO <temporary file>``: the
reads, the query and the write are one DuckDB statement, on every core, and no Arrow table is
made. It is used when the file it writes reads back the same as the one ``pyarrow`` would
write: every column of a type both writers store alike (a ``timestamp[s]`` column is written in
milliseconds, as ``pyarrow`` writes it). Otherwise, and for datasets (``partition_by``,
``append``, ``target_file_size``), the plan streams Arrow batches into bubbles' own writer.
``write_csv`` uses the same path in :mod:`bubbles.data.files.csvformat` (it writes with DuckDB
anyway). Both write aside and publish atomically, as for any other data.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from ..files._common import WrittenFile, quote_ident, schema_of, sql_string
from .engine import result_schema, run

if TYPE_CHECKING:
    import pyarrow as pa

    from ..files._fs import Location
    from .plan import Node

__all__ = ["copies", "copy_file"]

_COMPRESSION = {"zstd": "zstd", "snappy": "snappy", "gzip": "gzip", "lz4": "lz4_raw", "brotli": "brotli",
                "none": "uncompressed", "uncompressed": "uncompressed"}


def _same_in_parquet(t: pa.DataType) -> bool:
    import pyarrow as pa

    return (pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_float32(t) or pa.types.is_float64(t)
            or pa.types.is_string(t) or pa.types.is_binary(t) or pa.types.is_date32(t)
            or (pa.types.is_timestamp(t) and t.tz is None)
            or (pa.types.is_decimal(t) and t.bit_width == 128 and t.precision <= 38))


def copies(schema: pa.Schema, loc: Location, compression: str) -> bool:
    """Whether DuckDB writes this schema to ``loc`` as ``pyarrow`` would (see the module docstring)."""
    return loc.is_local and compression in _COMPRESSION and all(_same_in_parquet(f.type) for f in schema)


# DuckDB types its Parquet writer stores as pyarrow stores their Arrow form (HUGEINT is written as a double
# but reaches Arrow as decimal128(38, 0); UUID, JSON and BIT come out as other types; nested types differ)
_PLAIN_DUCK = re.compile(r"BOOLEAN|TINYINT|SMALLINT|INTEGER|BIGINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|FLOAT|DOUBLE|VARCHAR"
                         r"|BLOB|DATE|TIMESTAMP|TIMESTAMP_S|TIMESTAMP_MS|TIMESTAMP_NS|DECIMAL\(\d+,\s*\d+\)")


def duckdb_writes_alike(con: Any, text: str, params: Any, schema: pa.Schema) -> bool:
    """Whether DuckDB's COPY writes the plan's result as ``pyarrow`` writes its Arrow form: every column of a
    plain DuckDB type and of an Arrow type both store alike. (One difference stays: DuckDB marks columns it
    knows hold no null — constants, ``count(*)`` — as required in the file; their values are the same.)"""
    if not all(_same_in_parquet(f.type) for f in schema):
        return False
    types = con.sql(f"SELECT * FROM {text} AS __bubbles_types LIMIT 0", params=params).types
    return all(_PLAIN_DUCK.fullmatch(str(t)) for t in types)


def _select(schema: pa.Schema) -> str:
    import pyarrow as pa

    columns = []
    for f in schema:
        col = quote_ident(f.name)
        if pa.types.is_timestamp(f.type) and f.type.unit == "s":
            columns.append(f"CAST({col} AS TIMESTAMP_MS) AS {col}")  # Parquet has no seconds: pyarrow writes ms too
        else:
            columns.append(col)
    return ", ".join(columns)


def copy_file(node: Node, schema: pa.Schema, loc: Location, compression: str, level: int | None,
              row_group_size: int | None) -> WrittenFile:
    """Write the plan's result to ``loc`` (one Parquet file) by DuckDB, atomically."""
    from ..files._atomic import atomic_file

    options = ["FORMAT parquet", f"COMPRESSION {_COMPRESSION[compression]}"]
    if level is not None:
        options.append(f"COMPRESSION_LEVEL {int(level)}")
    if row_group_size:
        options.append(f"ROW_GROUP_SIZE {int(row_group_size)}")

    written: list[pa.Schema] = []

    with atomic_file(loc) as tmp:
        def copy(con: Any, text: str, params: Any) -> int:
            actual = result_schema(con, text, params)  # (the planned one, unless a file fell back with other types)
            written.append(actual)
            if not duckdb_writes_alike(con, text, params, actual):  # pyarrow's writer, from the plan's batches
                from ..files.parquet import write_file_at

                reader = con.sql(f"SELECT * FROM {text} AS __bubbles_out", params=params).to_arrow_reader(_ROW_GROUP)
                return write_file_at(tmp, reader, compression, level, row_group_size)
            con.execute(f"COPY (SELECT {_select(actual)} FROM {text} AS __bubbles_out) TO {sql_string(tmp)} "
                        f"({', '.join(options)})", params)
            row = con.fetchone()
            return int(row[0]) if row else 0

        rows = run(node, copy, consumer="write_parquet", target=str(loc), rows=lambda n: n)
        size = os.path.getsize(tmp)
    return WrittenFile(str(loc), rows, size, schema_of(written[-1] if written else schema))


_ROW_GROUP = 128 * 1024
