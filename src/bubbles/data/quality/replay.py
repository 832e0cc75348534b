"""Replaying quarantined rows: check them again (after the rule or the data was fixed) and deliver those that pass.

``replay(sink, to=..., contract=...)`` takes the part files of a Parquet sink (all, or one run's),
validates the rows' source columns against the contract (none: every row passes, e.g. after
the rows were corrected), writes the rows that pass to ``to`` and appends those that still fail
— and the bad lines, which have no columns to check: fix the file and read it again — to the
sink as a new part, with their new reasons. Then the replayed parts are removed. The output is
written before anything is removed, so a crash in between replays those rows again rather
than losing them: load the output by key (``mode="merge"``) if that matters.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..._errors import ConfigError
from .contract import Contract
from .quarantine import META_COLUMNS, Sink, append, parts, sink_for

__all__ = ["Replayed", "replay"]


@dataclass(frozen=True)
class Replayed:
    """What a replay did: rows read, delivered to ``to``, and kept in quarantine."""

    sink: str
    rows: int
    replayed: int
    kept: int
    output: str | None
    parts: int


def _write(rows: Any, to: str) -> None:
    if "#" in to and "://" in to:
        from ..._secrets import resolve
        from ..db import connect, write_table

        url, _, table = to.rpartition("#")
        with connect(resolve(url, purpose="the replay target")) as conn:
            write_table(conn, table, rows, mode="append")
        return
    from ..files import write_csv, write_json, write_parquet

    lower = to.lower()
    if lower.endswith(".csv"):
        write_csv(rows, to)
    elif lower.endswith((".json", ".jsonl", ".ndjson")):
        write_json(rows, to)
    elif lower.endswith((".parquet", ".pq")):
        write_parquet(rows, to)
    else:
        raise ConfigError(f"replay(to={to!r}): write to a .parquet, .csv or .jsonl file, or to 'URL#table'.")


def replay(sink: str | Sink, *, to: str, contract: Contract | str | None = None, references: dict[str, Any] | None = None,
           run_id: str | None = None) -> Replayed:
    """Check a Parquet sink's rows again and deliver those that pass (see the module docstring).

    Example:
        >>> from bubbles.data.quality import replay
        >>> replay("quarantine/orders", to="fixed_orders.parquet", contract="contracts/orders.yaml")  # doctest: +SKIP
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from ..files._fs import locate
    from .validate import _contract, validate

    s = sink_for(sink, "replay") if not isinstance(sink, Sink) else sink
    assert s is not None
    if s.kind != "parquet":
        raise ConfigError(f"replay() works on Parquet sinks; {s.location} is a table: select its rows with SQL, "
                          "validate() them and delete what you replayed in one transaction.")
    files = [f for f in parts(s) if run_id is None or f"-{run_id}-" in os.path.basename(f)]
    if not files:
        return Replayed(s.location, 0, 0, 0, None, 0)
    loc = locate(s.location)
    rows = pa.concat_tables([pq.read_table(f, filesystem=loc.fs) for f in files], promote_options="permissive")
    raw_lines = pc.is_valid(rows.column("_raw"))
    lines = rows.filter(raw_lines)
    records = rows.filter(pc.invert(raw_lines))
    data = records.drop_columns([c for c in META_COLUMNS if c in records.schema.names])
    c = _contract(contract) if contract is not None else None
    kept = [lines] if lines.num_rows else []
    replayed = 0
    if records.num_rows:
        if c is not None:
            v = validate(data, c, references=references, quarantine=False, raise_on_fail=False)
            good, bad = v.valid, v.quarantined
            if bad.num_rows:
                # keep where they first came from: the source and line of the original rows are kept
                kept.append(bad)
        else:
            good = data
        if good.num_rows:
            _write(good, to)
            replayed = good.num_rows
    still = pa.concat_tables(kept, promote_options="permissive") if kept else None
    if still is not None and still.num_rows:
        append(s, still, source=None, contract=c.name if c else None)
    for f in files:
        loc.fs.delete_file(f)
    return Replayed(s.location, rows.num_rows, replayed, still.num_rows if still is not None else 0,
                    to if replayed else None, len(files))
