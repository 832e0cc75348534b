"""Flat files on Apache Arrow: CSV, JSON, Parquet, ORC and Avro in and out, local or on object storage.

Every reader returns a ``pyarrow.Table``, or with ``batch_size=`` a ``pyarrow.RecordBatchReader``
that streams; every writer accepts tables, streams and pandas/polars frames, writes atomically
and returns the :class:`WrittenFile` list it produced. Rows and bytes read and written feed the
running task's metrics.
"""

from __future__ import annotations

from ._common import BadLineError, WrittenFile
from .csv import read_csv
from .csvformat import CsvFormat, write_csv
from .json import read_json, write_json
from .orc_avro import read_avro, read_orc, write_avro, write_orc
from .parquet import compact, read_parquet, write_parquet

__all__ = [
    "BadLineError",
    "CsvFormat",
    "WrittenFile",
    "compact",
    "read_avro",
    "read_csv",
    "read_json",
    "read_orc",
    "read_parquet",
    "write_avro",
    "write_csv",
    "write_json",
    "write_orc",
    "write_parquet",
]
