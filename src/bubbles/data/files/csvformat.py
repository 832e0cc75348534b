"""CSV export profiles (:class:`CsvFormat`) and :func:`write_csv`.

A profile is declared once per receiving team ("finance wants ``;``, decimal commas, dates as
``dd.mm.yyyy``, latin-1, CRLF") and reused. Writing is DuckDB's parallel CSV writer driven by
one ``SELECT`` that selects, renames, orders and formats the columns; it scans Arrow tables,
record-batch streams and pandas/polars frames in place. Output other than UTF-8 is transcoded
in a second, streaming pass. Every file is written atomically.
"""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..._errors import ConfigError, DataError
from .. import lineage
from ..lazy import is_lazy
from ..lazy.engine import restartable, result_schema, run
from ._atomic import atomic_file
from ._common import WrittenFile, count_written, quote_ident, sql_string, to_arrow, to_table
from ._fileset import FileSet
from ._fs import Location, locate

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["CsvFormat", "write_csv"]

_QUOTING = ("minimal", "all", "strings", "none")
_COMPRESSION_SUFFIX = {".gz": "gzip", ".zst": "zstd"}


@dataclass(frozen=True)
class CsvFormat:
    """How a CSV deliverable looks. Declare once, reuse; ``fmt.replace(...)`` derives a variant.

    Attributes:
        delimiter: field separator.
        quotechar: quote character.
        quoting: ``"minimal"`` (only when needed), ``"all"``, ``"strings"`` (every text column),
            ``"none"`` (never; the values must not contain the delimiter).
        escapechar: escape for a quote inside a quoted value (default: doubled quote). Another
            character than the quote makes ``"minimal"`` quote every text value (an unquoted
            escape character would be misread).
        header: write the header line.
        encoding: output encoding, e.g. ``"utf-8"``, ``"utf-8-sig"`` (with BOM), ``"latin-1"``.
        line_terminator: ``"\\n"`` or ``"\\r\\n"``.
        null: text written for nulls.
        date_format, timestamp_format: strftime formats (e.g. ``"%d.%m.%Y"``).
        decimal_separator: ``"."`` or ``","`` for decimal and float columns.
        decimal_places: fixed number of places for float and decimal columns.
        columns: columns to write, in order: a list of names, or a ``{source: output_name}`` dict
            that also renames.
        compression: ``None``, ``"gzip"``, ``"zstd"``; ``"infer"`` from the file name (``.gz``, ``.zst``).
        split_rows: start a new file every this many rows (``{part}`` in the path, else ``-00001``).
        split_by: one file per value of this column (``{key}`` in the path, else ``-<value>``).

    Example:
        >>> from bubbles import CsvFormat
        >>> FINANCE = CsvFormat(delimiter=";", decimal_separator=",", date_format="%d.%m.%Y",
        ...                     encoding="latin-1", line_terminator="\\r\\n")
        >>> FINANCE.replace(header=False).header
        False
    """

    delimiter: str = ","
    quotechar: str = '"'
    quoting: str = "minimal"
    escapechar: str | None = None
    header: bool = True
    encoding: str = "utf-8"
    line_terminator: str = "\n"
    null: str = ""
    date_format: str | None = None
    timestamp_format: str | None = None
    decimal_separator: str = "."
    decimal_places: int | None = None
    columns: Sequence[str] | Mapping[str, str] | None = None
    compression: str | None = "infer"
    split_rows: int | None = None
    split_by: str | None = None

    def __post_init__(self) -> None:
        if self.quoting not in _QUOTING:
            raise ConfigError(f"CsvFormat quoting={self.quoting!r} is not one of {', '.join(_QUOTING)}.")
        if self.line_terminator not in ("\n", "\r\n"):
            raise ConfigError(f"CsvFormat line_terminator={self.line_terminator!r}: use '\\n' or '\\r\\n'.")
        if self.compression not in (None, "infer", "gzip", "zstd"):
            raise ConfigError(f"CsvFormat compression={self.compression!r} is not one of None, 'infer', 'gzip', 'zstd'.")
        if self.decimal_separator not in (".", ","):
            raise ConfigError(f"CsvFormat decimal_separator={self.decimal_separator!r}: use '.' or ','.")
        if self.decimal_places is not None and (not isinstance(self.decimal_places, int) or self.decimal_places < 0):
            raise ConfigError(f"CsvFormat decimal_places={self.decimal_places!r} must be a non-negative int.")
        if self.split_rows is not None and self.split_rows < 1:
            raise ConfigError(f"CsvFormat split_rows={self.split_rows!r} must be a positive number of rows.")
        if self.split_rows and self.split_by:
            raise ConfigError("CsvFormat: give split_rows or split_by, not both.")
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ConfigError(f"CsvFormat encoding={self.encoding!r} is not an encoding Python knows; use e.g. "
                              "'utf-8', 'utf-8-sig', 'latin-1' or 'cp1252'.") from None
        if self.escapechar and self.null and self.escapechar in self.null:
            raise ConfigError(f"CsvFormat null={self.null!r} contains the escape character {self.escapechar!r}: a reader "
                              "could not tell the null text from an escaped value. Pick another null text.")
        if len(self.delimiter) != 1 or len(self.quotechar) != 1:
            raise ConfigError("CsvFormat delimiter and quotechar must be single characters.")

    def replace(self, **changes: Any) -> CsvFormat:
        """A copy of this profile with some fields changed."""
        return dataclasses.replace(self, **changes)


def write_csv(data: Any, path: str | os.PathLike[str], format: CsvFormat | None = None, *,
              storage_options: dict[str, Any] | None = None, **options: Any) -> list[WrittenFile]:
    """Write ``data`` as CSV following a :class:`CsvFormat` profile (keyword options override it).

    Args:
        data: an Arrow table or record-batch stream, a pandas/polars frame, or a list of dicts.
        path: target file (local or fsspec URL). With ``split_rows`` or ``split_by`` it is a
            template: ``{part}`` / ``{key}`` are replaced, or a suffix is added before the extension.
        format: the profile; keyword arguments (``delimiter=";"``, ``header=False`` ...) override it.
        storage_options: passed to fsspec for URLs.

    Returns:
        The files written, each with ``path``, ``rows`` and ``bytes``.

    Example:
        >>> import bubbles, pyarrow as pa
        >>> files = bubbles.write_csv(pa.table({"x": [1.5, None]}), "/tmp/x.csv", delimiter=";",
        ...                           decimal_separator=",", null="NULL")
        >>> open("/tmp/x.csv").read()
        'x\\n1,5\\nNULL\\n'
    """
    fmt = (format or CsvFormat()).replace(**options) if options else (format or CsvFormat())
    target = os.fspath(path)
    compression = fmt.compression
    if compression == "infer":
        compression = next((c for s, c in _COMPRESSION_SUFFIX.items() if target.endswith(s)), None)
    written, schema = restartable(data, lambda: _write(data, target, fmt, compression, storage_options))
    count_written(written)
    lineage.files_written(data, written, "csv", columns=[(out, src) for src, out in _output_names(schema, fmt)])
    return written


def _write(data: Any, target: str, fmt: CsvFormat, compression: str | None,
           storage_options: dict[str, Any] | None) -> tuple[list[WrittenFile], pa.Schema]:
    if not (fmt.split_by or fmt.split_rows):
        loc = locate(target, storage_options)
        if is_lazy(data) and not data.is_read and loc.is_local and not _zoned(data.schema):
            # the plan's statement writes the file: reads, query and write in one DuckDB statement
            schema = data.schema
            with atomic_file(loc) as tmp:
                def copy(con: Any, text: str, params: Any) -> WrittenFile:
                    actual = result_schema(con, text, params)  # (a file that fell back may have other types than planned)
                    return _copy(con, text, params, actual, loc, tmp, fmt, compression)

                one = run(data.plan, copy, consumer="write_csv", target=str(loc), rows=lambda w: w.rows)
                return [one], schema  # (for lineage: its column names, which a fallback never changes)
        arrow = to_arrow(data, what="write_csv data")
        with _con() as con, atomic_file(loc) as tmp:
            return [_write_one(con, arrow, loc, tmp, fmt, compression)], arrow.schema
    table = to_table(data, what="write_csv data")
    parts = list(_split(table, fmt, target))
    first = locate(parts[0][0], storage_options)
    written: list[WrittenFile] = []
    with _con() as con:
        if not first.is_local:  # object storage: each part is one atomic upload; the set is not (see docs/files.md)
            for name, part in parts:
                loc = locate(name, storage_options)
                with atomic_file(loc) as tmp:
                    written.append(_write_one(con, part, loc, tmp, fmt, compression))
        else:
            folder, set_name = _set_of(os.path.abspath(target))
            fileset = FileSet(folder, set_name)
            try:
                for name, part in parts:
                    loc = locate(name)
                    written.append(_write_one(con, part, loc, fileset.add(loc.path), fmt, compression))
                fileset.commit()
            except BaseException:
                fileset.discard()
                raise
    return written, table.schema


def _zoned(schema: pa.Schema) -> bool:
    """Whether a column holds zoned timestamps (written in UTC: by a connection set to UTC, not in a plan's statement)."""
    import pyarrow as pa

    return any(pa.types.is_timestamp(f.type) and f.type.tz is not None for f in schema)


def _set_of(template: str) -> tuple[str, str]:
    """The folder a split set lives in (the template's path up to its first ``{...}``) and the set's name."""
    head, tail = os.path.split(template)
    parts = [tail]
    while "{" in head:
        head, tail = os.path.split(head)
        parts.insert(0, tail)
    return head, "_".join(parts)


@contextlib.contextmanager
def _con() -> Any:
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        # zoned timestamps are written in UTC (with their +00 offset), whatever the machine's zone
        with contextlib.suppress(duckdb.Error):
            con.execute("SET TimeZone = 'UTC'")
        yield con
    finally:
        con.close()


def _split(table: pa.Table, fmt: CsvFormat, target: str) -> Any:
    import pyarrow.compute as pc

    if fmt.split_rows:
        count = max(1, -(-table.num_rows // fmt.split_rows))
        for i in range(count):
            yield _part_name(target, "part", f"{i + 1:05d}"), table.slice(i * fmt.split_rows, fmt.split_rows)
        return
    key = fmt.split_by
    assert key is not None
    if key not in table.column_names:
        raise ConfigError(f"write_csv split_by={key!r}: no such column; the data has {table.column_names}.")
    column = table.column(key)
    for value in pc.unique(column).to_pylist():
        mask = pc.is_null(column) if value is None else pc.equal(column, value)
        yield _part_name(target, "key", _safe(value)), table.filter(mask)


def _safe(value: Any) -> str:
    text = "null" if value is None else str(value)
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text) or "_"


def _part_name(target: str, field: str, value: str) -> str:
    if "{" + field + "}" in target:
        return target.replace("{" + field + "}", value)
    head, sep, tail = target.rpartition("/")
    name = tail
    stem, dot, ext = name.partition(".")
    return f"{head}{sep}{stem}-{value}{dot}{ext}"


def _write_one(con: Any, data: Any, loc: Location, tmp: str, fmt: CsvFormat, compression: str | None) -> WrittenFile:
    """Write one CSV file at ``tmp`` (which becomes ``loc``) with DuckDB's writer; transcode if needed."""
    con.register("src", data)
    try:
        return _copy(con, "src", None, data.schema, loc, tmp, fmt, compression)
    finally:
        con.unregister("src")


def _copy(con: Any, source: str, params: Any, schema: pa.Schema, loc: Location, tmp: str, fmt: CsvFormat,
          compression: str | None) -> WrittenFile:
    """``COPY`` the relation ``source`` (a registered name, or a plan's statement with its ``params``) to ``tmp``."""
    import duckdb

    select = _select(schema, fmt)
    transcode = fmt.encoding.lower().replace("_", "-") not in ("utf-8", "utf8")
    options = _copy_options(schema, fmt, None if transcode else compression)
    raw = tmp + ".utf8" if transcode else tmp
    try:
        con.execute(f"COPY ({select} FROM {source} AS src) TO {sql_string(raw)} ({options})", params)
    except duckdb.Error as exc:
        if params is not None or source != "src":
            raise  # a plan's statement: its engine translates (and may run it again)
        raise DataError(f"Writing CSV {loc} failed: {exc}", source=str(loc)) from exc
    rows = _count_rows(con)
    if transcode:
        try:
            _transcode(raw, tmp, fmt.encoding, compression)
        finally:
            os.unlink(raw)
    size = os.path.getsize(tmp)
    pairs = _output_names(schema, fmt)
    columns = tuple((out, str(schema.field(src).type)) for src, out in pairs)
    return WrittenFile(str(loc), rows, size, columns)


def _count_rows(con: Any) -> int:
    # COPY returns the number of rows written as its result
    try:
        row = con.fetchone()
        return int(row[0]) if row else 0
    except Exception:  # pragma: no cover - older DuckDB without a COPY result
        return 0


def _select(schema: pa.Schema, fmt: CsvFormat) -> str:
    import pyarrow as pa

    if fmt.columns is None:
        pairs = [(name, name) for name in schema.names]
    elif isinstance(fmt.columns, Mapping):
        pairs = list(fmt.columns.items())
    else:
        pairs = [(name, name) for name in fmt.columns]
    missing = [src for src, _ in pairs if src not in schema.names]
    if missing:
        raise ConfigError(f"write_csv columns {missing} are not in the data; it has {schema.names}.")
    exprs = []
    for src, out in pairs:
        t = schema.field(src).type
        col = quote_ident(src)
        expr = col
        is_number = pa.types.is_floating(t) or pa.types.is_decimal(t)
        if is_number and fmt.decimal_places is not None:
            expr = f"printf('%.{int(fmt.decimal_places)}f', {col})"
        if is_number and fmt.decimal_separator == ",":
            expr = f"replace(CAST({expr} AS VARCHAR), '.', ',')"
        exprs.append(f"{expr} AS {quote_ident(out)}")
    return "SELECT " + ", ".join(exprs)


def _copy_options(schema: pa.Schema, fmt: CsvFormat, compression: str | None) -> str:
    import pyarrow as pa

    # only what differs from DuckDB's defaults: every extra option measurably slows its writer down
    opts = ["FORMAT csv", f"HEADER {'true' if fmt.header else 'false'}"]
    if fmt.delimiter != ",":
        opts.append(f"DELIMITER {sql_string(fmt.delimiter)}")
    if fmt.null:
        opts.append(f"NULLSTR {sql_string(fmt.null)}")
    if fmt.line_terminator != "\n":
        opts.append(f"NEW_LINE {sql_string(fmt.line_terminator)}")
    if compression:
        opts.append(f"COMPRESSION {sql_string(compression)}")
    if fmt.quoting == "none":
        opts += ["QUOTE ''", "ESCAPE ''"]
    elif fmt.quotechar != '"' or (fmt.escapechar or '"') != '"':
        opts.append(f"QUOTE {sql_string(fmt.quotechar)}")
        opts.append(f"ESCAPE {sql_string(fmt.escapechar or fmt.quotechar)}")
    # an escape character other than the quote is only an escape inside quotes: a text value holding
    # it unquoted would be misread, so with such an escape every text value is quoted
    escaping = bool(fmt.escapechar) and fmt.escapechar != fmt.quotechar
    if fmt.quoting == "all":
        opts.append("FORCE_QUOTE *")
    elif fmt.quoting == "strings" or (fmt.quoting == "minimal" and escaping):
        out_names = _output_names(schema, fmt)
        strings = [out for src, out in out_names if pa.types.is_string(schema.field(src).type)
                   or pa.types.is_large_string(schema.field(src).type)]
        if strings:
            opts.append("FORCE_QUOTE (" + ", ".join(quote_ident(s) for s in strings) + ")")
    if fmt.date_format:
        opts.append(f"DATEFORMAT {sql_string(fmt.date_format)}")
    if fmt.timestamp_format:
        opts.append(f"TIMESTAMPFORMAT {sql_string(fmt.timestamp_format)}")
    return ", ".join(opts)


def _output_names(schema: pa.Schema, fmt: CsvFormat) -> list[tuple[str, str]]:
    if fmt.columns is None:
        return [(n, n) for n in schema.names]
    if isinstance(fmt.columns, Mapping):
        return list(fmt.columns.items())
    return [(n, n) for n in fmt.columns]


def _transcode(src: str, dst: str, encoding: str, compression: str | None) -> None:
    """Re-encode a UTF-8 file, streaming; a character the encoding lacks is a DataError naming the line."""
    import pyarrow as pa

    # one incremental encoder for the whole file: ``str.encode("utf-8-sig")`` per line would put a
    # byte-order mark before every line, not only at the start of the file
    encoder = codecs.getincrementalencoder(encoding)()
    sink: Any = pa.OSFile(dst, "wb")
    if compression:
        sink = pa.CompressedOutputStream(sink, compression)
    try:
        with open(src, encoding="utf-8", newline="") as f:
            for number, line in enumerate(f, start=1):
                try:
                    sink.write(encoder.encode(line))
                except UnicodeEncodeError as exc:
                    raise DataError(
                        f"Line {number} of the CSV output has {line[exc.start:exc.end]!r}, which {encoding} cannot encode. "
                        "Use encoding='utf-8' for this receiver, or clean the value first.",
                        line=number, raw=line.rstrip("\r\n"),
                    ) from None
        sink.write(encoder.encode("", final=True))
    finally:
        sink.close()
