"""A task graph as text: Mermaid (renders on GitHub) and Graphviz DOT (and PNG through ``dot``)."""

from __future__ import annotations

import re
import shutil
import subprocess

from .._errors import ConfigError
from ..engine.graph import Graph

__all__ = ["to_dot", "to_mermaid", "to_png"]


def _ident(key: str) -> str:
    return "n_" + re.sub(r"\W", "_", key)


def _edges(graph: Graph) -> list[tuple[str, str, bool]]:
    """(upstream, downstream, passes_output) for each dependency."""
    out = []
    for node in graph.nodes.values():
        inputs = set(node.input_keys())
        for dep in node.deps:
            out.append((dep, node.key, dep in inputs))
    return out


def _label(graph: Graph, key: str) -> str:
    node = graph.nodes[key]
    if node.kind == "gather":
        return f"{key} (parallel)"
    if node.kind == "map":
        return f"{key} (map)"
    return key


def to_mermaid(graph: Graph) -> str:
    lines = ["flowchart LR"]
    for key in graph.order():
        label = _label(graph, key).replace('"', "'")
        lines.append(f'    {_ident(key)}["{label}"]')
    for up, down, data in _edges(graph):
        arrow = "-->" if data else "-.->"
        lines.append(f"    {_ident(up)} {arrow} {_ident(down)}")
    return "\n".join(lines) + "\n"


def to_dot(graph: Graph) -> str:
    lines = [f'digraph "{graph.name}" {{', "    rankdir=LR;", "    node [shape=box, style=rounded];"]
    for key in graph.order():
        label = _label(graph, key).replace('"', '\\"')
        lines.append(f'    {_ident(key)} [label="{label}"];')
    for up, down, data in _edges(graph):
        style = "" if data else " [style=dashed]"
        lines.append(f"    {_ident(up)} -> {_ident(down)}{style};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_png(graph: Graph, path: str) -> None:
    dot = shutil.which("dot")
    if dot is None:
        raise ConfigError(
            "A PNG needs Graphviz's `dot` program, which is not installed (apt-get install graphviz). "
            "Use --format mermaid or --format dot for text."
        )
    subprocess.run([dot, "-Tpng", "-o", path], input=to_dot(graph).encode(), check=True)
