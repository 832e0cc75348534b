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
def demo(rows: int, workdir: str, executor: str) -> None:
    """Run the demo ETL: extract in parallel, transform in DuckDB, load DuckDB + SQLite, report metrics."""
    from ..demo import run_demo

    raise SystemExit(run_demo(rows=rows, workdir=workdir, executor=executor))


commands = [demo]
