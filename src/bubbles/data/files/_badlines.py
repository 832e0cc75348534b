"""Bad lines of an input file: where each one goes (``on_bad_lines``), and the error that names the first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..._context import log_metric
from ._common import NOT_RETRIED, BadLineError

__all__ = ["Bad", "BadLines"]


@dataclass(slots=True)
class Bad:
    """One bad line (or multi-line record): where it starts, what is wrong, and its text."""

    line: int | None
    reason: str
    raw: str | None
    column: str | None = None


class BadLines:
    """Raised at the first one (``"error"``), or kept for the quarantine file and the ``bad_lines`` metric.

    Args:
        kind: ``"CSV file"`` or ``"JSON file"``, for messages.
        source: the file, as shown.
        policy: the ``on_bad_lines`` value.
        quarantine: the quarantine sink of the lines (a Parquet dataset folder or ``URL#table``, see
            :mod:`bubbles.data.quality.quarantine`); ``None``: ``<quarantine_dir>/<file name>``.
        hint: how to fix, for the error message.
    """

    def __init__(self, kind: str, source: str, policy: str, quarantine: str | None, hint: str) -> None:
        self.kind, self.source, self.policy, self.quarantine, self.hint = kind, source, policy, quarantine, hint
        self.items: list[Bad] = []

    def __call__(self, bad: Bad) -> None:
        if self.policy == "error":
            raise self.error(bad)
        self.items.append(bad)

    def error(self, bad: Bad) -> BadLineError:
        where = f"line {bad.line}" if bad.line else "a line"
        column = f", column {bad.column!r}" if bad.column else ""
        shown = f" Raw line: {bad.raw[:200]!r}." if bad.raw is not None else ""
        return BadLineError(
            f"Bad line in {self.kind} {self.source}, {where}{column}: {bad.reason}.{shown} {self.hint} "
            "Or pass on_bad_lines='quarantine' to set bad lines aside. " + NOT_RETRIED,
            source=self.source, line=bad.line, column=bad.column, raw=bad.raw, reason=bad.reason,
        )

    def finish(self, storage_options: dict[str, Any] | None) -> None:
        """Count the bad lines in the task's metrics and append them to the quarantine sink.

        The sink is the one contracts use (one format: :mod:`bubbles.data.quality.quarantine`);
        a bad line is a row with ``_rules`` ``bad_line``, its ``_reason``, ``_column``, ``_line``
        and ``_raw`` text.
        """
        if not self.items:
            return
        self.items.sort(key=lambda b: b.line or 0)
        log_metric("bad_lines", len(self.items), add=True)
        if self.policy != "quarantine":
            return
        import pyarrow as pa

        from ..quality.quarantine import append, complete, sink_for

        name = self.source.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
        sink = sink_for(self.quarantine, name)
        if sink is None:
            return
        rows = pa.table({
            "_rules": pa.array(["bad_line"] * len(self.items), pa.string()),
            "_reason": pa.array([b.reason for b in self.items], pa.string()),
            "_column": pa.array([b.column for b in self.items], pa.string()),
            "_raw": pa.array([b.raw for b in self.items], pa.string()),
            "_line": pa.array([b.line for b in self.items], pa.int64()),
        })
        append(sink, complete(rows, source=self.source, contract=None), source=self.source,
               storage_options=storage_options)
