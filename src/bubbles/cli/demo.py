"""``bubbles demo``: run the demo ETL job on embedded defaults."""

from __future__ import annotations

import click

from ..engine.executors import EXECUTORS

__all__ = ["commands"]


@click.command()
@click.option("--rows", type=click.IntRange(min=100), default=200_000, show_default=True, help="Orders to generate.")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False),
    default=".bubbles/demo",
    show_default=True,
    help="Where the demo writes its source files, warehouse and deliveries.",
)
@click.option("-e", "--executor", type=click.Choice(list(EXECUTORS)), default="threads")
@click.option(
    "--fail-at",
    type=click.Choice(["load_warehouse", "load_reporting", "write_lake", "deliver_finance"]),
    default=None,
    help="Make this load fail, as if its target were down (then try --resume).",
)
@click.option("--resume", is_flag=True, help="Continue the last demo run: rerun what failed, reuse the rest.")
def demo(rows: int, workdir: str, executor: str, fail_at: str | None, resume: bool) -> None:
    """Run the demo ETL: extract in parallel, check a contract, transform in DuckDB, load DuckDB + SQLite + Parquet,
    deliver CSV files; every output kept so a failed run resumes."""
    from .._errors import ConfigError
    from ..demo import run_demo

    try:
        code = run_demo(rows=rows, workdir=workdir, executor=executor, fail_at=fail_at, resume=resume)
    except ConfigError as exc:  # (--resume with no demo run to resume, a bad setting): the message, no traceback
        hint = " Run `bubbles demo` (or `bubbles demo --fail-at load_warehouse`) first." if resume else ""
        raise click.UsageError(f"{exc}{hint}") from None
    raise SystemExit(code)


commands = [demo]
