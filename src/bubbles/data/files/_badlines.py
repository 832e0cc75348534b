"""Bad lines of an input file: where each one goes (``on_bad_lines``), and the error that names the first."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..._context import log_metric
from ._atomic import atomic_file
from ._common import NOT_RETRIED, BadLineError
from ._fs import locate

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
        quarantine: where quarantined lines go (JSON lines: source, line, column, reason, raw).
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
        """Count the bad lines in the task's metrics and write the quarantine file (atomically)."""
        if not self.items:
            return
        self.items.sort(key=lambda b: b.line or 0)
        log_metric("bad_lines", len(self.items), add=True)
        if self.policy != "quarantine" or not self.quarantine:
            return
        with atomic_file(locate(self.quarantine, storage_options)) as tmp, open(tmp, "w", encoding="utf-8") as f:
            for b in self.items:
                record = {"source": self.source, "line": b.line, "column": b.column, "reason": b.reason, "raw": b.raw}
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
