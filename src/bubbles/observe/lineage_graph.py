"""Lineage from the run store, for people: upstream and downstream of a dataset (or a column), across runs.

The edges are the ``lineage`` table's rows (:mod:`bubbles.store.schema`), merged over every
recorded run: "``out.parquet`` came from ``orders.csv`` through task ``demo.load``". This module
walks them and draws the result as a text tree, a Mermaid flowchart or a Graphviz DOT graph; the
``bubbles lineage`` command (:mod:`bubbles.cli.lineage`) prints it. :func:`show_lineage` and
:func:`report_datasets` describe one run's datasets for ``bubbles show RUN --lineage`` and the
HTML report.

Example:
    >>> from bubbles.store import open_store  # doctest: +SKIP
    >>> with open_store() as store:  # doctest: +SKIP
    ...     print("\\n".join(tree(store, resolve(store, "out/orders.parquet"))))
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .._errors import BubblesError
from .._naming import file_dataset, uri

__all__ = ["Graph", "dot", "graph", "mermaid", "report_datasets", "resolve", "show_lineage", "tree"]

Key = tuple[str, str, str | None]  # (namespace, name, column or None for the whole dataset)


class LineageError(BubblesError):
    """A dataset or column the run store has no lineage for (or several that match)."""


def resolve(store: Any, text: str) -> tuple[str, str]:
    """The dataset ``text`` names: a URI (``file://host/path``, ``postgres://db:5432/shop.public.orders``), a
    local path, or a unique part of a recorded dataset's name."""
    known = store.dataset_names(limit=100_000)
    candidates = {(r["namespace"], r["name"]) for r in known}
    exact = [(ns, n) for ns, n in candidates if text in (uri(ns, n), f"{ns}{n}", n)]
    if not exact and "://" not in text:
        local = file_dataset(os.path.abspath(text))
        exact = [(ns, n) for ns, n in candidates if n == local[1] and ns.startswith("file://")]
    if not exact:
        exact = sorted((ns, n) for ns, n in candidates if text in n)
    if len(exact) == 1:
        return exact[0]
    if not exact:
        raise LineageError(f"No dataset matching {text!r} in the run store {store.describe()}. Give a path, a URI or a "
                           "part of a dataset's name as `bubbles show RUN --lineage` lists them.")
    shown = ", ".join(uri(ns, n) for ns, n in exact[:5])
    raise LineageError(f"{text!r} matches {len(exact)} datasets: {shown}{' ...' if len(exact) > 5 else ''}. Give more of "
                       "the name, or the full URI.")


@dataclass
class Graph:
    """Edges around one dataset: ``edges[(output, input)] = {"tasks": {...}, "how": ..., "note": ..., "run": ...}``."""

    root: Key
    edges: dict[tuple[Key, Key], dict[str, Any]] = field(default_factory=dict)

    def add(self, row: dict[str, Any], columns: bool) -> tuple[Key, Key]:
        out: Key = (row["namespace"], row["name"], row["field"] if columns else None)
        src: Key = (row["input_namespace"], row["input_name"], row["input_field"] if columns else None)
        info = self.edges.setdefault((out, src), {"tasks": set(), "how": set(), "note": None, "run": None})
        info["tasks"].add(row["task"])
        if row["transformation"]:
            info["how"].add(row["transformation"])
        info["note"] = info["note"] or row["note"]
        info["run"] = row["run_id"]
        return out, src


def graph(store: Any, dataset: tuple[str, str], column: str | None = None, *, depth: int = 20) -> Graph:
    """Every edge upstream and downstream of ``dataset`` (or of one of its columns), ``depth`` steps each way."""
    root: Key = (dataset[0], dataset[1], column)
    g = Graph(root)
    columns = column is not None
    for inputs in (False, True):  # upstream: edges into the node; downstream: edges out of it
        frontier = [root]
        seen = {root}
        for _ in range(depth):
            following: list[Key] = []
            for ns, name, col in frontier:
                for row in store.lineage(namespace=ns, name=name, inputs=inputs):
                    if columns and (row["input_field"] if inputs else row["field"]) != col:
                        continue
                    if columns and (row["field"] is None or row["input_field"] is None):
                        continue
                    if not columns and row["field"] is not None:
                        continue  # the dataset-level edges are enough for a dataset graph
                    out, src = g.add(row, columns)
                    nxt = out if inputs else src
                    if nxt not in seen:
                        seen.add(nxt)
                        following.append(nxt)
            frontier = following
            if not frontier:
                break
    if not g.edges and not any(r for r in store.datasets(namespace=dataset[0], name=dataset[1])):
        raise LineageError(f"No lineage recorded for {uri(*dataset)}{f' column {column!r}' if column else ''}.")
    return g


def _label(key: Key) -> str:
    ns, name, col = key
    return uri(ns, name) + (f" [{col}]" if col else "")


def _via(info: dict[str, Any]) -> str:
    parts = [", ".join(sorted(info["tasks"]))]
    if info["how"]:
        parts.append("/".join(sorted(h.lower() for h in info["how"])))
    if info["note"]:
        parts.append(info["note"])
    return "; ".join(p for p in parts if p)


def tree(g: Graph) -> list[str]:
    """The graph as an indented text tree: what the root came from (upstream), then what was made from it."""
    lines = [_label(g.root)]
    for title, upstream in (("upstream", True), ("downstream", False)):
        children: dict[Key, list[tuple[Key, dict[str, Any]]]] = {}
        for (out, src), info in g.edges.items():
            parent, child = (out, src) if upstream else (src, out)
            children.setdefault(parent, []).append((child, info))
        if g.root not in children:
            lines.append(f"  {title}: none recorded")
            continue
        lines.append(f"  {title}:")
        _branch(lines, children, g.root, "    ", frozenset({g.root}), "<-" if upstream else "->")
    return lines


def _branch(lines: list[str], children: dict[Key, list[tuple[Key, dict[str, Any]]]], node: Key, indent: str,
            path: frozenset[Key], arrow: str) -> None:
    items = sorted(children.get(node, []), key=lambda item: _label(item[0]))
    for i, (child, info) in enumerate(items):
        last = i == len(items) - 1
        lines.append(f"{indent}{'└─' if last else '├─'} {arrow} {_label(child)}  ({_via(info)})")
        if child not in path:  # a cycle (a dataset rewritten from itself) is drawn once
            _branch(lines, children, child, indent + ("   " if last else "│  "), path | {child}, arrow)


def _ids(g: Graph) -> dict[Key, str]:
    nodes: dict[Key, str] = {}
    for out, src in g.edges:
        for key in (src, out):
            nodes.setdefault(key, f"n{len(nodes)}")
    nodes.setdefault(g.root, f"n{len(nodes)}")
    return nodes


def mermaid(g: Graph) -> str:
    """The graph as a Mermaid flowchart (``graph LR``: inputs on the left)."""
    ids = _ids(g)
    lines = ["graph LR"]
    for key, nid in ids.items():
        text = _label(key).replace('"', "#quot;")
        lines.append(f'    {nid}["{text}"]')
    for (out, src), info in sorted(g.edges.items(), key=lambda e: (ids[e[0][1]], ids[e[0][0]])):
        text = _via(info).replace('"', "#quot;").replace("|", "/")
        lines.append(f'    {ids[src]} -->|"{text}"| {ids[out]}')
    lines.append(f"    style {ids[g.root]} stroke-width:3px")
    return "\n".join(lines)


def dot(g: Graph) -> str:
    """The graph in Graphviz DOT (``dot -Tsvg``)."""
    ids = _ids(g)

    def q(text: str) -> str:
        return json.dumps(text)  # a DOT string: double quotes, escaped

    lines = ["digraph lineage {", "  rankdir=LR;", "  node [shape=box];"]
    for key, nid in ids.items():
        bold = ", penwidth=3" if key == g.root else ""
        lines.append(f"  {nid} [label={q(_label(key))}{bold}];")
    for (out, src), info in sorted(g.edges.items(), key=lambda e: (ids[e[0][1]], ids[e[0][0]])):
        lines.append(f"  {ids[src]} -> {ids[out]} [label={q(_via(info))}];")
    lines.append("}")
    return "\n".join(lines)


# -- one run -----------------------------------------------------------------------------------------
def _size(row: dict[str, Any]) -> str:
    from .format import human_bytes, human_count

    parts = []
    if row["rows"] is not None:
        parts.append(f"{human_count(row['rows'])} rows")
    if row["bytes"] is not None:
        parts.append(human_bytes(row["bytes"]))
    return ", ".join(parts)


def show_lineage(store: Any, run_id: str) -> list[str]:
    """Lines for ``bubbles show RUN --lineage``: per task, what it read and wrote, and where each written column came from."""
    datasets = store.datasets(run_id)
    edges = store.lineage(run_id)
    if not datasets and not edges:
        return ["No datasets recorded for this run (lineage off, or its tasks touched no data through bubbles' connectors)."]
    lines: list[str] = []
    for task in dict.fromkeys(r["task"] for r in [*datasets, *edges]):
        lines.append(f"{task}:")
        for d in (d for d in datasets if d["task"] == task):
            arrow = "reads " if d["direction"] == "read" else "writes"
            extra = ", ".join(p for p in (d["format"], _size(d), d["content_hash"]) if p)
            lines.append(f"  {arrow} {uri(d['namespace'], d['name'])}" + (f"  ({extra})" if extra else ""))
        mine = [e for e in edges if e["task"] == task]
        for out in dict.fromkeys((e["namespace"], e["name"]) for e in mine):
            these = [e for e in mine if (e["namespace"], e["name"]) == out]
            for e in (e for e in these if e["field"] is None):
                note = f"  ({e['note']})" if e["note"] else ""
                lines.append(f"  {uri(*out)} <- {uri(e['input_namespace'], e['input_name'])}{note}")
            by_col: dict[str, list[str]] = {}
            for e in (e for e in these if e["field"] is not None):
                how = "" if e["transformation"] == "IDENTITY" else " (computed)"
                by_col.setdefault(e["field"], []).append(f"{os.path.basename(e['input_name']) or e['input_name']}."
                                                        f"{e['input_field']}{how}")
            for col, sources in by_col.items():
                lines.append(f"    {col} <- {', '.join(sources)}")
    return lines


def report_datasets(store: Any, run_id: str) -> str:
    """An HTML fragment (a ``<section>`` with a table) of the datasets a run read and wrote, for the run report."""
    rows = store.datasets(run_id)
    edges = store.lineage(run_id)
    cells = []
    for d in rows:
        columns = json.loads(d["schema"]) if d["schema"] else []
        sources = sorted({uri(e["input_namespace"], e["input_name"]) for e in edges
                          if (e["namespace"], e["name"]) == (d["namespace"], d["name"]) and e["field"] is None})
        cells.append(
            "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
                d["task"], d["direction"], d["kind"] or "", uri(d["namespace"], d["name"]), d["format"] or "", _size(d),
                d["content_hash"] or "", ", ".join(c[0] for c in columns), ", ".join(sources)))
            + "</tr>")
    if not cells:
        return '<section class="datasets"><h2>Datasets</h2><p>No datasets recorded for this run.</p></section>'
    head = "".join(f"<th>{h}</th>" for h in ("task", "", "kind", "dataset", "format", "size", "content hash", "columns",
                                             "derived from"))
    return (f'<section class="datasets"><h2>Datasets</h2><table><thead><tr>{head}</tr></thead><tbody>'
            f"{''.join(cells)}</tbody></table></section>")


def edges_of(rows: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    """``(output URI, input URI)`` of table-level edges (for tests and quick looks)."""
    return [(uri(r["namespace"], r["name"]), uri(r["input_namespace"], r["input_name"])) for r in rows if r["field"] is None]
