"""The live progress line: fits 80 columns, shows only counts that are not zero, red only on failure."""

from __future__ import annotations

import io
import re

from rich.console import Console

from bubbles import Workflow
from bubbles.observe.progress import ProgressDisplay

RED = "\x1b[31m"


def draw(display: ProgressDisplay, width: int = 80) -> str:
    """The display as a terminal of ``width`` columns shows it, with its ANSI colours."""
    console = Console(width=width, file=io.StringIO(), record=True, force_terminal=True, color_system="standard")
    console.print(display)
    return console.export_text(styles=True)


def plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def fails() -> None:
    raise ValueError("broken")


def test_a_run_with_failures_and_a_retry_reads_right_while_it_runs() -> None:
    display = ProgressDisplay(delay=60)  # never shown on its own: drawn below, from inside a task
    drawn: list[str] = []
    tries = {"n": 0}

    def flaky() -> list[int]:
        tries["n"] += 1
        if tries["n"] == 1:
            raise RuntimeError("once")
        return [1]

    wf = Workflow("orders")
    wf.add_task(flaky, name="flaky", retries=1, retry_delay=0)
    wf.add_task(fails, name="bad1")
    wf.add_task(fails, name="bad2")
    for i in range(4):
        wf.add_task(lambda: [0] * 5000, name=f"rows{i}")
    wf.add_task(lambda: drawn.append(draw(display)), name="snapshot")
    wf.run(executor="serial", fail_fast=False, raise_on_error=False, hooks=[display])

    line = plain(drawn[0])
    assert line.count("\n") == 1 and len(line.rstrip("\n")) <= 80, line
    assert re.search(r"\b[67]/8 tasks · 1 running · 2 failed · 1 retry · [\d.]+[kMGT]? rows/s · [\d.]+ s$", line.strip()), line
    assert RED in drawn[0]  # something failed: the bar and the count are red
    assert RED + "2 failed" in drawn[0]


def test_a_clean_run_shows_no_zero_counts_and_no_red() -> None:
    display = ProgressDisplay(delay=60)
    wf = Workflow("clean")
    for i in range(8):
        wf.add_task(lambda: None, name=f"noop{i}")
    wf.run(executor="serial", hooks=[display])
    text = draw(display)
    line = plain(text).strip()
    assert re.fullmatch(r"clean ━+ 8/8 tasks · [\d.]+ s", line), line
    for word in ("running", "failed", "retr", "rows/s"):
        assert word not in line
    assert RED not in text


def test_a_big_run_with_a_long_name_still_fits_80_columns() -> None:
    display = ProgressDisplay(delay=60)
    wf = Workflow("a-workflow-with-a-name-much-too-long-for-a-progress-line")
    for i in range(2000):
        wf.add_task(fails if i % 3 == 0 else (lambda: [0] * 10), name=f"t{i}", retries=1 if i % 3 == 0 else 0, retry_delay=0)
    wf.run(executor="serial", fail_fast=False, raise_on_error=False, hooks=[display])
    for width in (80, 60, 30):
        line = plain(draw(display, width))
        assert line.count("\n") == 1 and len(line.rstrip("\n")) <= width, (width, line)
    line = plain(draw(display, 80)).strip()
    assert "2,000/2,000 tasks · 667 failed · 667 retries ·" in line and "━" in line
    assert "a-workflow" not in line  # no room for the name at 80 columns: the bar and the counts stay
    wide = plain(draw(display, 200)).strip()
    assert wide.startswith("a-workflow-with-a-name-m ")  # the name, cut to 24 characters, where there is room
