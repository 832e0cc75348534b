"""Column types given by name: ``"int64"``, ``"string"``, ``"timestamp[us]"``, ``"decimal(12,2)"``, or pyarrow types."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..._errors import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["as_schema", "as_type"]

_DECIMAL = re.compile(r"^decimal(?:128)?\((\d+),\s*(\d+)\)$")
_TZ = re.compile(r"^timestamp\[(s|ms|us|ns)(?:,\s*tz=(.+))?\]$")
_ALIASES = {"str": "string", "text": "string", "varchar": "string", "int": "int64", "integer": "int64",
            "bigint": "int64", "float": "float64", "double": "float64", "bool": "bool", "boolean": "bool",
            "date": "date32", "timestamp": "timestamp[us]", "datetime": "timestamp[us]"}


def as_type(value: Any, *, column: str = "") -> pa.DataType:
    import pyarrow as pa

    if isinstance(value, pa.DataType):
        return value
    if not isinstance(value, str):
        raise ConfigError(f"Column {column!r}: type {value!r} is neither a pyarrow type nor a type name like 'int64'.")
    text = _ALIASES.get(value.strip().lower(), value.strip())
    if m := _DECIMAL.match(text):
        return pa.decimal128(int(m.group(1)), int(m.group(2)))
    if (m := _TZ.match(text)) and m.group(2):
        return pa.timestamp(m.group(1), tz=m.group(2))
    try:
        return pa.type_for_alias(text)
    except (ValueError, KeyError):
        raise ConfigError(
            f"Column {column!r}: unknown type name {value!r}. Use a pyarrow type or a name such as 'int64', 'float64', "
            "'string', 'bool', 'date32', 'timestamp[us]', 'timestamp[us, tz=UTC]' or 'decimal(12,2)'."
        ) from None


def as_schema(schema: Any) -> pa.Schema:
    """A pyarrow schema from a ``pa.Schema`` or a ``{name: type}`` mapping."""
    import pyarrow as pa

    if isinstance(schema, pa.Schema):
        return schema
    if isinstance(schema, dict):
        return pa.schema([(name, as_type(t, column=name)) for name, t in schema.items()])
    raise ConfigError(f"schema must be a pyarrow.Schema or a {{name: type}} dict, got {type(schema).__name__}.")
