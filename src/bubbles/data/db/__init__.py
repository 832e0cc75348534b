"""Databases: DuckDB (the default warehouse), SQLite and PostgreSQL, as Arrow in and out.

```python
import bubbles

src = bubbles.connect("source")                   # a name from bubbles.toml / BUBBLES_CONN_SOURCE
rows = bubbles.read_incremental(src, "orders", cursor="updated_at", key="id")
bubbles.write_table("warehouse", "orders", rows, mode="merge", key="id")
```

Modules: ``url`` (URLs and secrets), ``connect`` (the factory), ``base`` (the Connection/Session
seam), one module per database (``duckdb``, ``sqlite``, ``postgres``), ``read``, ``write``,
``incremental``, ``types`` (Arrow <-> SQL types), ``errors``, ``testing`` (a throwaway PostgreSQL).
Drivers are imported only when a connection of their kind is opened.
"""

from __future__ import annotations

from .base import Connection, quote_ident
from .connect import connect
from .errors import ConnectionFailed, ConstraintViolation, DatabaseError, QueryError, SchemaDriftError
from .incremental import commit_watermarks, read_incremental
from .read import read_batches, read_sql, read_table, read_tables
from .write import write_table

__all__ = [
    "Connection",
    "ConnectionFailed",
    "ConstraintViolation",
    "DatabaseError",
    "QueryError",
    "SchemaDriftError",
    "commit_watermarks",
    "connect",
    "quote_ident",
    "read_batches",
    "read_incremental",
    "read_sql",
    "read_table",
    "read_tables",
    "write_table",
]
