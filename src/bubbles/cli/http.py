"""``bubbles api``: read a JSON API endpoint with the HTTP reader, to try its settings before writing an extract."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .._errors import BubblesError

if TYPE_CHECKING:
    from ..data.http import Paginator

__all__ = ["commands"]


def _paginator(spec: str | None, size: int | None, size_param: str | None, param: str | None) -> Paginator | None:
    from ..data.http import Cursor, LinkHeader, NextLink, OffsetLimit, PageNumber

    if spec is None:
        return None
    kind, _, path = spec.partition(":")
    if kind == "page":
        return PageNumber(param or "page", size=size, size_param=size_param)
    if kind == "offset":
        return OffsetLimit(limit=size or 100, offset_param=param or "offset", limit_param=size_param or "limit")
    if kind == "cursor" and path:
        return Cursor(path, param=param or "cursor")
    if kind == "next":
        return NextLink(path or "next")
    if kind == "link":
        return LinkHeader()
    raise click.BadParameter(
        f"{spec!r}: use page, offset, cursor:PATH (where the body holds the next token), next[:PATH] or link.",
        param_hint="--paginate",
    )


@click.command("api")
@click.argument("url")
@click.option("-r", "--records-path", default=None, help="Dotted path to the list of records in the body, e.g. data.items.")
@click.option(
    "-p",
    "--paginate",
    "pagination",
    default=None,
    metavar="STYLE",
    help="page | offset | cursor:PATH | next[:PATH] | link (default: one page).",
)
@click.option("--page-size", type=click.IntRange(min=1), default=None, help="Records per page to ask for.")
@click.option("--size-param", default=None, help="Parameter carrying the page size (page: e.g. per_page; offset: limit).")
@click.option("--param", "page_param", default=None, help="Parameter carrying the page number, offset or cursor.")
@click.option("-q", "--query", multiple=True, metavar="KEY=VALUE", help="Query parameter (repeatable).")
@click.option("--bearer", default=None, metavar="${NAME}", help="Bearer token, as a secret reference like ${API_TOKEN}.")
@click.option("--max-pages", type=click.IntRange(min=1), default=3, show_default=True, help="Pages to read (a sample).")
@click.option("--rate-limit", default=None, help="Client-side rate limit, e.g. 5/s or 300/min.")
@click.option("--concurrency", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--flatten", is_flag=True, help="Nested objects as parent__child columns.")
@click.option("-n", "--rows", type=click.IntRange(min=0), default=5, show_default=True, help="Rows to print.")
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None, help="Also write the table (.parquet or .csv).")
def api(
    url: str,
    records_path: str | None,
    pagination: str | None,
    page_size: int | None,
    size_param: str | None,
    page_param: str | None,
    query: tuple[str, ...],
    bearer: str | None,
    max_pages: int,
    rate_limit: str | None,
    concurrency: int,
    flatten: bool,
    rows: int,
    out: str | None,
) -> None:
    """Read URL page by page and show the schema, counters and first rows.

    Example: bubbles api https://api.example.com/users -r data -p page --page-size 50 --size-param per_page
    """
    import time

    from ..data.http import ApiSource, BearerToken

    params: dict[str, str] = {}
    for item in query:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE.", param_hint="--query")
        params[key] = value
    paginate = _paginator(pagination, page_size, size_param, page_param)
    source = ApiSource(auth=BearerToken(bearer) if bearer else None, rate_limit=rate_limit, concurrency=concurrency)
    started = time.perf_counter()
    try:
        with source:
            table = source.read(
                url, params=params, paginate=paginate, records_path=records_path, flatten=flatten, max_pages=max_pages
            )
    except BubblesError as exc:  # an HTTP error, a body that is not JSON, no records where asked: said, not a traceback
        click.secho(f"error: {exc}", fg="red", err=True)
        raise SystemExit(1) from None
    click.echo(f"{table.num_rows} records, {table.num_columns} columns in {time.perf_counter() - started:.2f} s")
    click.echo(str(table.schema))
    for row in table.slice(0, rows).to_pylist():
        click.echo(row)
    if out:
        if out.endswith(".csv"):
            import pyarrow.csv as pacsv

            pacsv.write_csv(table, out)
        else:
            import pyarrow.parquet as pq

            pq.write_table(table, out)
        click.echo(f"wrote {out}")


commands = [api]
