"""``bubbles lineage DATASET``: where a dataset (or one column) came from and what was made from it, across runs.

DATASET is a path (``out/orders.parquet``), a URI (``postgres://db:5432/shop.public.orders``) or a
unique part of a recorded dataset's name. The graph comes from the run store's ``lineage`` table
(:mod:`bubbles.observe.lineage_graph`); ``--format mermaid`` and ``--format dot`` print it for a
Markdown page or Graphviz.
"""

from __future__ import annotations

import sys

import click

from .._errors import BubblesError

__all__ = ["commands"]


@click.command("lineage")
@click.argument("dataset")
@click.option("--column", default=None, help="Follow one column instead of the whole dataset.")
@click.option("--format", "fmt", type=click.Choice(["tree", "mermaid", "dot"]), default="tree", show_default=True,
              help="How to print the graph.")
@click.option("--depth", type=click.IntRange(min=1), default=20, show_default=True, help="Steps to follow each way.")
def lineage_command(dataset: str, column: str | None, fmt: str, depth: int) -> None:
    """Show upstream and downstream lineage of DATASET (a path, a URI or part of a name) across recorded runs."""
    from ..observe import lineage_graph
    from .history import _store

    try:
        with _store() as store:
            found = lineage_graph.resolve(store, dataset)
            g = lineage_graph.graph(store, found, column, depth=depth)
    except BubblesError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(2)
    if fmt == "mermaid":
        click.echo(lineage_graph.mermaid(g))
    elif fmt == "dot":
        click.echo(lineage_graph.dot(g))
    else:
        click.echo("\n".join(lineage_graph.tree(g)))


commands = [lineage_command]
