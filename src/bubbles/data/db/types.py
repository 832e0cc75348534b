"""Arrow types to SQL column types and back, and the rule for when a type change is allowed.

A table created by :func:`~bubbles.data.db.write.write_table` gets column types from the Arrow
schema (``int64`` -> ``BIGINT``, ``timestamp[us, tz]`` -> ``TIMESTAMPTZ``, ``decimal128(p, s)`` ->
``NUMERIC(p, s)``...). When data goes into an existing table, each incoming column must *widen*
into the table's column (``int32`` into ``BIGINT``, ``float32`` into ``DOUBLE``); anything else
(``string`` into ``BIGINT``, ``float64`` into ``INTEGER``) is a :class:`SchemaDriftError`, never a
silent cast.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..._errors import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["arrow_from_sqlite_decl", "can_widen", "normalize_arrow", "sql_type"]


def sql_type(t: pa.DataType, dialect: str) -> str:
    """The SQL column type for Arrow type ``t`` in ``dialect`` (``duckdb``, ``postgresql``, ``sqlite``)."""
    import pyarrow.types as pt

    pg = dialect == "postgresql"
    if pt.is_dictionary(t):
        return sql_type(t.value_type, dialect)
    if pt.is_boolean(t):
        return "BOOLEAN"
    if pt.is_int8(t) or pt.is_int16(t) or pt.is_uint8(t):
        return "SMALLINT"
    if pt.is_int32(t) or pt.is_uint16(t):
        return "INTEGER"
    if pt.is_int64(t) or pt.is_uint32(t):
        return "BIGINT"
    if pt.is_uint64(t):
        return "NUMERIC(20, 0)" if pg else "UBIGINT" if dialect == "duckdb" else "INTEGER"
    if pt.is_float16(t) or pt.is_float32(t):
        return "REAL"
    if pt.is_float64(t):
        return "DOUBLE PRECISION" if pg else "DOUBLE"
    if pt.is_string(t) or pt.is_large_string(t) or pt.is_string_view(t):
        return "TEXT"
    if pt.is_binary(t) or pt.is_large_binary(t) or pt.is_fixed_size_binary(t) or pt.is_binary_view(t):
        return "BYTEA" if pg else "BLOB"
    if pt.is_date(t):
        return "DATE"
    if pt.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    if pt.is_time(t):
        return "TIME"
    if pt.is_duration(t):
        return "INTERVAL" if dialect != "sqlite" else "BIGINT"
    if pt.is_decimal(t):
        if t.precision > 38 and dialect == "duckdb":
            return "DOUBLE"
        return f"NUMERIC({t.precision}, {t.scale})" if dialect != "sqlite" else f"DECIMAL({t.precision}, {t.scale})"
    if pt.is_null(t):
        return "TEXT"
    if (pt.is_list(t) or pt.is_large_list(t)) and dialect != "sqlite":
        return sql_type(t.value_type, dialect) + "[]"
    if pt.is_struct(t) and dialect == "duckdb":
        inner = ", ".join(f'"{f.name}" {sql_type(f.type, dialect)}' for f in t)
        return f"STRUCT({inner})"
    raise ConfigError(
        f"Arrow type {t} has no {dialect} column type in bubbles. Convert the column first "
        "(e.g. to a string with pyarrow.compute.cast, or to JSON text).",
        arrow_type=str(t),
        dialect=dialect,
    )


def arrow_from_sqlite_decl(decl: str) -> pa.DataType | None:
    """The Arrow type for a SQLite declared column type, or ``None`` to infer from values."""
    import pyarrow as pa

    d = (decl or "").upper()
    if d in ("BOOLEAN", "BOOL"):
        return pa.bool_()
    if d == "DATE":
        return pa.date32()
    if d in ("TIMESTAMP", "DATETIME"):
        return pa.timestamp("us")
    if d == "TIMESTAMPTZ":
        return pa.timestamp("us", tz="UTC")
    if d == "TIME":
        return pa.time64("us")
    if "INT" in d:
        return pa.int64()
    if any(k in d for k in ("REAL", "FLOA", "DOUB")):
        return pa.float64()
    m = re.fullmatch(r"(?:DECIMAL|NUMERIC)\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)", d)
    if m:
        return pa.decimal128(int(m.group(1)), int(m.group(2)))
    if d.startswith(("DECIMAL", "NUMERIC")):
        return pa.float64()
    if any(k in d for k in ("CHAR", "CLOB", "TEXT")):
        return pa.string()
    if "BLOB" in d:
        return pa.binary()
    return None


def normalize_arrow(t: pa.DataType) -> pa.DataType:
    """The plain Arrow type a database round-trip gives back (dictionaries decoded, views plain)."""
    import pyarrow as pa
    import pyarrow.types as pt

    if pt.is_dictionary(t):
        return normalize_arrow(t.value_type)
    if pt.is_large_string(t) or pt.is_string_view(t):
        return pa.string()
    if pt.is_large_binary(t) or pt.is_binary_view(t):
        return pa.binary()
    return t


def can_widen(src: pa.DataType, dst: pa.DataType) -> bool:
    """True when every value of Arrow type ``src`` fits type ``dst`` without loss or reinterpretation."""
    import pyarrow.types as pt

    src, dst = normalize_arrow(src), normalize_arrow(dst)
    if src.equals(dst) or pt.is_null(src):
        return True
    if pt.is_integer(src) and pt.is_integer(dst):
        if pt.is_signed_integer(src) and not pt.is_signed_integer(dst):
            return False
        extra = 0 if pt.is_signed_integer(src) == pt.is_signed_integer(dst) else 1
        return src.bit_width + extra <= dst.bit_width
    if pt.is_integer(src) and pt.is_floating(dst):
        return src.bit_width < dst.bit_width and dst.bit_width == 64 and src.bit_width <= 32
    if pt.is_integer(src) and pt.is_decimal(dst):
        digits = {8: 3, 16: 5, 32: 10, 64: 20}[src.bit_width]
        return dst.precision - dst.scale >= digits
    if pt.is_floating(src) and pt.is_floating(dst):
        return src.bit_width <= dst.bit_width
    if pt.is_decimal(src) and pt.is_decimal(dst):
        return dst.scale >= src.scale and dst.precision - dst.scale >= src.precision - src.scale
    if pt.is_timestamp(src) and pt.is_timestamp(dst):
        return (src.tz is None) == (dst.tz is None)
    if pt.is_date(src) and pt.is_date(dst):
        return True
    if pt.is_time(src) and pt.is_time(dst):
        return True
    if (pt.is_string(src) and pt.is_string(dst)) or (pt.is_binary(src) and pt.is_binary(dst)):
        return True
    if (pt.is_list(src) or pt.is_large_list(src)) and (pt.is_list(dst) or pt.is_large_list(dst)):
        return can_widen(src.value_type, dst.value_type)
    return False
