"""ORC (through pyarrow) and Avro (through fastavro), the other formats of data lakes.

Avro schemas map to Arrow types both ways: primitives, nullable unions, records (structs),
arrays (lists), maps, and the logical types date, timestamp-millis/-micros and decimal.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..._errors import ConfigError, DataError, MissingDependencyError
from .. import lineage
from ..lazy.engine import restartable
from ._atomic import atomic_file
from ._common import WrittenFile, as_output, count_read, count_written, counted, missing_file, schema_of, to_reader
from ._fs import Location, locate

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["read_avro", "read_orc", "write_avro", "write_orc"]


def read_orc(path: str | os.PathLike[str], *, columns: Sequence[str] | None = None, batch_size: int | None = None,
             storage_options: dict[str, Any] | None = None, output: str = "arrow") -> Any:
    """Read an ORC file (only ``columns`` are read), as a table or a stream of stripes.

    ``output="pandas"`` or ``"polars"`` returns a frame instead of a table.

    Example:
        >>> import bubbles
        >>> t = bubbles.read_orc("orders.orc", columns=["id", "amount"])  # doctest: +SKIP
    """
    import pyarrow as pa
    import pyarrow.orc as orc

    loc = locate(path, storage_options)
    try:
        f = orc.ORCFile(loc.fs.open_input_file(loc.path))
        if batch_size:
            cols = list(columns) if columns else None

            def stripes() -> Iterator[pa.RecordBatch]:
                for i in range(f.nstripes):
                    stripe = f.read_stripe(i, columns=cols)  # one stripe in memory at a time
                    for start in range(0, stripe.num_rows, batch_size):
                        yield stripe.slice(start, batch_size)

            schema = f.schema if cols is None else pa.schema([f.schema.field(c) for c in cols])
            return lineage.read_file(counted(pa.RecordBatchReader.from_batches(schema, stripes())), loc, "orc")
        table = f.read(columns=list(columns) if columns else None)
    except FileNotFoundError:
        raise missing_file("ORC file", loc) from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{loc} is not a readable ORC file: {exc}. Check the path and that it was written whole.",
                        source=str(loc)) from None
    count_read(table.num_rows, table.nbytes, files=[loc])
    return lineage.read_file(as_output(table, output), loc, "orc", table=table)


def write_orc(data: Any, path: str | os.PathLike[str], *, compression: str = "zstd",
              storage_options: dict[str, Any] | None = None) -> list[WrittenFile]:
    """Write ``data`` as one ORC file, atomically.

    Example:
        >>> import bubbles, pyarrow as pa
        >>> _ = bubbles.write_orc(pa.table({"x": [1, 2]}), "/tmp/x.orc")
    """
    loc = locate(path, storage_options)
    return restartable(data, lambda: _write_orc(data, loc, compression))


def _write_orc(data: Any, loc: Location, compression: str) -> list[WrittenFile]:
    import pyarrow as pa
    import pyarrow.orc as orc

    reader = to_reader(data, what="write_orc data")
    rows = 0
    with atomic_file(loc) as tmp:
        writer = orc.ORCWriter(tmp, compression=compression)
        try:
            for batch in reader:
                writer.write(pa.Table.from_batches([batch]))
                rows += batch.num_rows
        finally:
            writer.close()
        size = os.path.getsize(tmp)
    written = [WrittenFile(str(loc), rows, size, schema_of(reader.schema))]
    count_written(written)
    lineage.files_written(data, written, "orc")
    return written


def _fastavro() -> Any:
    try:
        import fastavro
    except ImportError as exc:  # pragma: no cover
        raise MissingDependencyError("Avro files", "fastavro", "avro") from exc
    return fastavro


# -- Avro <-> Arrow schemas --------------------------------------------------------------------------
def _arrow_type(avro: Any) -> pa.DataType:
    import pyarrow as pa

    if isinstance(avro, list):
        branches = [b for b in avro if b != "null"]
        if len(branches) == 1:
            return _arrow_type(branches[0])
        return pa.string()  # a union of several types: keep as text
    if isinstance(avro, dict):
        logical = avro.get("logicalType")
        kind = avro.get("type")
        if logical == "date":
            return pa.date32()
        if logical == "timestamp-millis":
            return pa.timestamp("ms", tz="UTC")
        if logical == "timestamp-micros":
            return pa.timestamp("us", tz="UTC")
        if logical in ("local-timestamp-millis", "local-timestamp-micros"):
            return pa.timestamp("ms" if logical.endswith("millis") else "us")
        if logical == "decimal":
            return pa.decimal128(avro["precision"], avro.get("scale", 0))
        if kind == "record":
            return pa.struct([pa.field(f["name"], _arrow_type(f["type"])) for f in avro["fields"]])
        if kind == "array":
            return pa.list_(_arrow_type(avro["items"]))
        if kind == "map":
            return pa.map_(pa.string(), _arrow_type(avro["values"]))
        if kind == "enum":
            return pa.string()
        if kind == "fixed":
            return pa.binary(avro["size"])
        return _arrow_type(kind)
    primitive = {"null": pa.null(), "boolean": pa.bool_(), "int": pa.int32(), "long": pa.int64(), "float": pa.float32(),
                 "double": pa.float64(), "bytes": pa.binary(), "string": pa.string()}
    if avro in primitive:
        return primitive[avro]
    raise DataError(f"Avro type {avro!r} is not supported; read it with fastavro directly.")


def _avro_type(t: pa.DataType, name: str) -> Any:
    import pyarrow as pa

    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        return "long" if t.bit_width > 32 or t in (pa.uint32(),) else "int"
    if pa.types.is_float32(t):
        return "float"
    if pa.types.is_floating(t):
        return "double"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "bytes"
    if pa.types.is_date(t):
        return {"type": "int", "logicalType": "date"}
    if pa.types.is_timestamp(t):
        unit = "millis" if t.unit in ("s", "ms") else "micros"
        return {"type": "long", "logicalType": f"timestamp-{unit}" if t.tz else f"local-timestamp-{unit}"}
    if pa.types.is_decimal(t):
        return {"type": "bytes", "logicalType": "decimal", "precision": t.precision, "scale": t.scale}
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return {"type": "array", "items": _nullable(_avro_type(t.value_type, name + "_item"))}
    if pa.types.is_map(t):
        return {"type": "map", "values": _nullable(_avro_type(t.item_type, name + "_value"))}
    if pa.types.is_struct(t):
        return {"type": "record", "name": name, "fields": [
            {"name": f.name, "type": _nullable(_avro_type(f.type, f"{name}_{f.name}"))} for f in t]}
    raise ConfigError(f"Column {name!r} has type {t}, which has no Avro equivalent here; cast it first.")


def _nullable(avro: Any) -> Any:
    return ["null", avro]


def avro_schema(schema: pa.Schema, name: str = "Row") -> dict[str, Any]:
    """The Avro record schema for an Arrow schema (every field nullable)."""
    return {"type": "record", "name": name,
            "fields": [{"name": f.name, "type": _nullable(_avro_type(f.type, f.name)), "default": None} for f in schema]}


def read_avro(path: str | os.PathLike[str], *, columns: Sequence[str] | None = None, batch_size: int | None = None,
              storage_options: dict[str, Any] | None = None, output: str = "arrow") -> Any:
    """Read an Avro object container file into Arrow (a table, or a stream with ``batch_size``).

    ``output="pandas"`` or ``"polars"`` returns a frame instead of a table.

    Example:
        >>> import bubbles
        >>> t = bubbles.read_avro("events.avro")  # doctest: +SKIP
    """
    import pyarrow as pa

    fastavro = _fastavro()
    loc = locate(path, storage_options)
    try:
        f = loc.fs.open_input_file(loc.path)
    except FileNotFoundError:
        raise missing_file("Avro file", loc) from None
    try:
        records = fastavro.reader(f)
    except (ValueError, EOFError, OSError) as exc:
        f.close()
        raise DataError(f"{loc} is not an Avro container file: {exc}.", source=str(loc)) from None
    schema = _arrow_type(records.writer_schema)
    arrow_schema = pa.schema([pa.field(field.name, field.type) for field in schema])
    if columns:
        arrow_schema = pa.schema([arrow_schema.field(c) for c in columns])
    size = batch_size or 65_536

    def batches() -> Iterator[pa.RecordBatch]:
        chunk: list[dict[str, Any]] = []
        try:
            for record in records:
                chunk.append(record)
                if len(chunk) >= size:
                    yield pa.RecordBatch.from_pylist(chunk, schema=arrow_schema)
                    chunk = []
            if chunk:
                yield pa.RecordBatch.from_pylist(chunk, schema=arrow_schema)
        except (ValueError, EOFError, OSError) as exc:
            raise DataError(f"Avro file {loc} is corrupt or truncated: {exc}.", source=str(loc)) from None
        finally:
            f.close()

    reader = pa.RecordBatchReader.from_batches(arrow_schema, batches())
    if batch_size:
        return lineage.read_file(counted(reader), loc, "avro")
    table = reader.read_all()
    count_read(table.num_rows, table.nbytes, files=[loc])
    return lineage.read_file(as_output(table, output), loc, "avro", table=table)


def write_avro(data: Any, path: str | os.PathLike[str], *, codec: str = "deflate", name: str = "Row",
               storage_options: dict[str, Any] | None = None) -> list[WrittenFile]:
    """Write ``data`` as an Avro container file (schema derived from Arrow), atomically.

    Example:
        >>> import bubbles, pyarrow as pa
        >>> _ = bubbles.write_avro(pa.table({"x": [1, 2]}), "/tmp/x.avro")
    """
    _fastavro()
    loc = locate(path, storage_options)
    return restartable(data, lambda: _write_avro(data, loc, codec, name))


def _write_avro(data: Any, loc: Location, codec: str, name: str) -> list[WrittenFile]:
    fastavro = _fastavro()
    reader = to_reader(data, what="write_avro data")
    schema = fastavro.parse_schema(avro_schema(reader.schema, name))
    rows = 0

    def records() -> Iterator[dict[str, Any]]:
        nonlocal rows
        for batch in reader:
            rows += batch.num_rows
            yield from batch.to_pylist()

    with atomic_file(loc) as tmp:
        with open(tmp, "wb") as out:
            fastavro.writer(out, schema, records(), codec=codec)
        size = os.path.getsize(tmp)
    written = [WrittenFile(str(loc), rows, size, schema_of(reader.schema))]
    count_written(written)
    lineage.files_written(data, written, "avro")
    return written
