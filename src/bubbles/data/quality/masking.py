"""Masks as DuckDB expressions, computed in the same pass as the checks.

==============  =================================================  ==============================
mask            what a value becomes                               e.g.
==============  =================================================  ==============================
``hash``        HMAC-SHA256 of the text, hex (keyed, deterministic) ``5f1d...`` (64 characters)
``redact``      ``***``                                            ``***``
``email``       first letter and the domain                        ``j***@example.com``
``card``        the last four digits                               ``**** **** **** 4242``
``phone``       the last two digits                                ``*********42``
``truncate:N``  the first N characters                             ``1234``
``truncate:U``  a time cut to its ``month``, ``day``, ``hour``...  ``2024-06-01 00:00:00``
``round:N``     a number rounded to N digits (negative: tens...)   ``1200``
==============  =================================================  ==============================

``hash`` is HMAC-SHA256 (RFC 2104) written with DuckDB's ``sha256``: ``sha256(opad || sha256(ipad ||
text))`` with the key's pads passed as bound parameters, so the key never appears in SQL text and
the same value gives the same digest in every run and every table (joins on masked keys work).
The key is the secret named by the ``mask_key_secret`` setting (``BUBBLES_MASK_KEY`` by default):
an environment variable or a key of the secrets file; it is masked like every secret.

Nulls stay null. Every mask but ``round`` and ``truncate`` by a unit gives text.

Example:
    >>> import bubbles, pyarrow as pa
    >>> t = pa.table({"email": ["jane@example.com"], "card": ["4242 4242 4242 4242"]})
    >>> bubbles.mask(t, {"email": "email", "card": "card"}).to_pylist()
    [{'email': 'j***@example.com', 'card': '**** **** **** 4242'}]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .contract import parse_mask

__all__ = ["MaskKey", "hmac_pads", "mask", "mask_sql", "quote"]

_BLOCK = 64  # SHA-256's block size in bytes


def quote(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + str(name).replace('"', '""') + '"'


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """The inner and outer pads of an HMAC-SHA256 key (RFC 2104)."""
    import hashlib

    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


class MaskKey:
    """The key of ``hash`` masks, read from its secret the first time a hash mask needs it."""

    def __init__(self, secret: str | None = None, key: bytes | str | None = None) -> None:
        self.secret = secret
        self._key = key.encode() if isinstance(key, str) else key
        self.used = False

    def params(self) -> dict[str, bytes]:
        """The bound parameters of the HMAC expression."""
        if self._key is None:
            from ..._secrets import get_secret
            from ..._settings import current_settings

            name = self.secret or current_settings().mask_key_secret
            self._key = get_secret(name, purpose="the key of hash masks (HMAC-SHA256)").encode()
        self.used = True
        ipad, opad = hmac_pads(self._key)
        return {"__bq_ipad": ipad, "__bq_opad": opad}


def mask_sql(expr: str, kind: str, arg: Any, params: dict[str, Any], key: MaskKey) -> str:
    """The DuckDB expression masking ``expr`` (adds the parameters it binds to ``params``)."""
    text = f"CAST({expr} AS VARCHAR)"
    if kind == "hash":
        params.update(key.params())
        return f"sha256($__bq_opad || unhex(sha256($__bq_ipad || encode({text}))))"
    if kind == "redact":
        return f"CASE WHEN {expr} IS NULL THEN NULL ELSE '***' END"
    if kind == "email":
        return (f"CASE WHEN {expr} IS NULL THEN NULL WHEN strpos({text}, '@') > 1 "
                f"THEN left({text}, 1) || '***' || substr({text}, strpos({text}, '@')) ELSE '***' END")
    if kind in ("card", "phone"):
        digits = f"regexp_replace({text}, '[^0-9]', '', 'g')"
        keep = 4 if kind == "card" else 2
        if kind == "card":
            return f"CASE WHEN {expr} IS NULL THEN NULL ELSE '**** **** **** ' || right({digits}, {keep}) END"
        hidden = f"repeat('*', greatest(length({digits}) - {keep}, 0))"
        return f"CASE WHEN {expr} IS NULL THEN NULL ELSE {hidden} || right({digits}, {keep}) END"
    if kind == "truncate":
        if isinstance(arg, int):
            return f"left({text}, {int(arg)})"
        return f"date_trunc('{arg}', {expr})"  # arg is one of a fixed set of unit words (parse_mask)
    if kind == "round":
        return f"round({expr}, {int(arg)})"
    raise ValueError(f"unknown mask {kind!r}")


def mask(data: Any, columns: Mapping[str, str], *, key_secret: str | None = None) -> Any:
    """Mask ``columns`` of ``data`` (``{column: mask}``) in one DuckDB pass; other columns pass as they are.

    Args:
        data: an Arrow table or stream, a DuckDB relation, a pandas/polars frame.
        columns: the mask of each column (see the module docstring).
        key_secret: the secret holding the ``hash`` key (default: the ``mask_key_secret`` setting).

    Returns:
        An Arrow table (a stream stays a stream).
    """
    import duckdb

    from ..._errors import ConfigError
    from ..files._common import is_stream, to_arrow

    arrow = to_arrow(data, what="mask() data")
    names = list(arrow.schema.names)
    missing = [c for c in columns if c not in names]
    if missing:
        raise ConfigError(f"mask(): no column {missing[0]!r} in the data (columns: {', '.join(names)}).")
    key = MaskKey(key_secret)
    params: dict[str, Any] = {}
    select = []
    for name in names:
        spec = parse_mask(columns[name], f"mask() column {name!r}") if name in columns else None
        select.append(f"{mask_sql(quote(name), spec[0], spec[1], params, key)} AS {quote(name)}" if spec else quote(name))
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.register("__bq_input", arrow)
    sql = f"SELECT {', '.join(select)} FROM __bq_input"
    if is_stream(arrow):
        reader = con.sql(sql, params=params).to_arrow_reader(65_536)

        def batches() -> Any:
            try:
                yield from reader
            finally:
                con.close()

        import pyarrow as pa

        return pa.RecordBatchReader.from_batches(reader.schema, batches())
    try:
        return con.sql(sql, params=params).to_arrow_table()
    finally:
        con.close()
