"""``bubbles compact``, ``bubbles clean`` and ``bubbles decrypt``: maintenance of datasets, leftovers and delivered files."""

from __future__ import annotations

import click

__all__ = ["commands"]


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("--target-size", default="128MB", show_default=True, help="Target file size, e.g. 64MB.")
def compact(path: str, target_size: str) -> None:
    """Merge the small Parquet files of the dataset at PATH, directory by directory."""
    from ..data.files.parquet import compact as run_compact

    stats = run_compact(path, target_file_size=_bytes(target_size))
    click.echo(
        f"{path}: {stats['files_before']} files -> {stats['files_after']} "
        f"({stats['directories']} directories compacted, {stats['rows']:,} rows rewritten)"
    )


@click.command()
@click.argument("src", type=click.Path(exists=True, dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False))
@click.option("--identity", "identity", default="${DELIVERY_IDENTITY}", show_default=True,
              help="The age secret key (AGE-SECRET-KEY-1...), normally a secret reference.")
def decrypt(src: str, dst: str, identity: str) -> None:
    """Decrypt SRC, an age file delivered with deliver(encrypt_to=...), into DST (the same as `age -d -i KEYFILE`)."""
    from ..data.encrypt import decrypt_file

    decrypt_file(src, dst, identity)
    click.echo(f"{dst} written")


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("--remove", is_flag=True, help="Remove the stale leftovers (and finish interrupted set publications).")
def clean(path: str, remove: bool) -> None:
    """List the leftovers of interrupted writes under PATH (and staging folders for it in the temp directory).

    A leftover is stale when the process that wrote it is gone; those still being written are
    shown as in progress and never removed. With --remove, stale temporary files and staging
    folders are deleted, and an interrupted publication of a file set is completed.
    """
    from ..data.files._leftovers import clean_all, find

    found = find(path)
    if not found:
        click.echo(f"{path}: no leftovers of interrupted writes")
        return
    stale = [f for f in found if f.stale]
    for f in sorted(found, key=lambda f: f.path):
        state = "stale" if f.stale else "in progress"
        click.echo(f"{state:11}  {f.kind:9}  {f.bytes:>12,} B  {f.path}  (for {f.target})")
    if not remove:
        click.echo(f"{len(stale)} stale, {sum(f.bytes for f in stale):,} bytes; run with --remove to clean them up")
        return
    cleaned = clean_all(path)
    click.echo(f"cleaned {len(cleaned)} stale leftover(s), {sum(f.bytes for f in cleaned):,} bytes")


def _bytes(text: str) -> int:
    units = {"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "B": 1}
    cleaned = text.strip().upper()
    for unit, factor in units.items():
        if cleaned.endswith(unit) and cleaned[: -len(unit)].strip().replace(".", "", 1).isdigit():
            return int(float(cleaned[: -len(unit)]) * factor)
    if cleaned.isdigit():
        return int(cleaned)
    raise click.BadParameter(f"{text!r} is not a size such as 64MB or 1GB.")


commands: list[click.Command] = [clean, compact, decrypt]
