"""The task graph: nodes, the edges between them, validation and ordering. It never executes.

A :class:`Node` is one unit the runner schedules. Its ``args``/``kwargs`` may hold :class:`Ref`
placeholders, replaced by upstream outputs just before the call; ``after`` lists ordering-only
dependencies (run after, receive nothing). Three kinds:

* ``task``   — calls ``spec.fn``;
* ``gather`` — runs nothing: its output is the list of its ``args`` (a ``ParallelTask`` or a static
  ``map``), each a Ref to a child node;
* ``map``    — expands at run time: when its single Ref input is ready, the runner adds one child
  task per item and the node's output is the list of theirs (dynamic fan-out).

Validation finds, before anything runs: duplicate names, unknown dependencies (with a "did you
mean"), cycles (naming the loop), and signatures that cannot take what they are given.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from .._errors import CycleError, DuplicateTaskError, SignatureError, UnknownTaskError
from .task import TaskSpec

__all__ = ["Graph", "Node", "Ref", "check_signature", "iter_refs", "substitute"]

NodeKind = Literal["task", "gather", "map"]


class Ref:
    """Placeholder for the output of node ``key`` inside a node's arguments."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    def __repr__(self) -> str:
        return f"Ref({self.key!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Ref, (self.key,))


@dataclass(eq=False, slots=True)
class Node:
    """One schedulable unit; see the module docstring for the kinds."""

    key: str
    spec: TaskSpec | None = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    after: tuple[str, ...] = ()
    kind: NodeKind = "task"
    limit: str | None = None  # name of a concurrency-limit group
    nested_refs: bool = False  # Refs may sit inside lists/dicts of args (decorator API)
    map_extra: tuple[Any, ...] = ()  # for kind == "map": args after the item
    deps: tuple[str, ...] = ()  # filled by Graph.add: every key this node waits for
    _inputs: tuple[str, ...] | None = field(default=None, repr=False)  # input_keys(), once known

    def input_keys(self) -> tuple[str, ...]:
        """The keys of the tasks whose outputs this node receives, in argument order (args are not changed once added)."""
        if self._inputs is None:
            self._inputs = tuple(ref.key for ref in iter_refs(self.args, self.kwargs, nested=self.nested_refs))
        return self._inputs


def iter_refs(args: Iterable[Any], kwargs: dict[str, Any], *, nested: bool = False) -> Iterator[Ref]:
    """Every Ref in ``args`` and ``kwargs`` (inside containers too when ``nested``)."""
    stack = [*args, *kwargs.values()]
    while stack:
        item = stack.pop()
        if isinstance(item, Ref):
            yield item
        elif nested and isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif nested and isinstance(item, dict):
            stack.extend(item.values())


def substitute(value: Any, outputs: dict[str, Any], nested: bool) -> Any:
    """``value`` with each Ref replaced by ``outputs[ref.key]``."""
    if isinstance(value, Ref):
        return outputs[value.key]
    if not nested:
        return value
    if isinstance(value, list):
        return [substitute(v, outputs, True) for v in value]
    if isinstance(value, tuple):
        return tuple(substitute(v, outputs, True) for v in value)
    if isinstance(value, (set, frozenset)):
        return type(value)(substitute(v, outputs, True) for v in value)
    if isinstance(value, dict):
        return {k: substitute(v, outputs, True) for k, v in value.items()}
    return value


class Graph:
    """Nodes by key, with dependency edges. Build with :meth:`add`, then :meth:`validate`."""

    def __init__(self, name: str = "workflow") -> None:
        self.name = name
        self.nodes: dict[str, Node] = {}
        self._duplicates: list[str] = []

    def add(self, node: Node) -> Node:
        if node.key in self.nodes:
            self._duplicates.append(node.key)
        deps = dict.fromkeys([*node.input_keys(), *node.after])
        node.deps = tuple(deps)
        self.nodes[node.key] = node
        return node

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, key: object) -> bool:
        return key in self.nodes

    def dependents(self) -> dict[str, list[str]]:
        """For each key, the keys that wait for it."""
        out: dict[str, list[str]] = {key: [] for key in self.nodes}
        for node in self.nodes.values():
            for dep in node.deps:
                if dep in out:
                    out[dep].append(node.key)
        return out

    def validate(self, *, check_signatures: bool = True) -> None:
        """Raise a :class:`GraphError` subclass if the graph cannot run as declared."""
        if self._duplicates:
            dup = self._duplicates[0]
            raise DuplicateTaskError(
                f"Workflow {self.name!r} has two tasks named {dup!r}. Task names are their identity "
                "(in the run history and when resuming); give one of them another name with name=...",
                task=dup,
                workflow=self.name,
            )
        for node in self.nodes.values():
            for dep in node.deps:
                if dep not in self.nodes:
                    close = difflib.get_close_matches(dep, list(self.nodes), n=1)
                    hint = f" Did you mean {close[0]!r}?" if close else ""
                    raise UnknownTaskError(
                        f"Task {node.key!r} in workflow {self.name!r} depends on {dep!r}, which is not "
                        f"a task of this workflow.{hint} Add it with add_task() first, or fix the name.",
                        task=node.key,
                        missing=dep,
                        workflow=self.name,
                    )
        cycle = self.find_cycle()
        if cycle:
            raise CycleError(
                f"Workflow {self.name!r} has a dependency cycle: {' -> '.join(cycle)}. "
                "A task cannot (even indirectly) depend on itself; remove one of these dependencies.",
                cycle=cycle,
                workflow=self.name,
            )
        if check_signatures:
            for node in self.nodes.values():
                if node.kind == "task" and node.spec is not None:
                    check_signature(node.spec, node.args, node.kwargs, node.after)

    def find_cycle(self) -> list[str] | None:
        """One dependency cycle as ``[a, b, ..., a]``, or ``None``. Iterative: no recursion limit."""
        color: dict[str, int] = {}  # 1 = on the current path, 2 = done
        for root in self.nodes:
            if color.get(root):
                continue
            path: list[str] = [root]
            iters = [iter(self.nodes[root].deps)]
            color[root] = 1
            while iters:
                dep = next(iters[-1], None)
                if dep is None:
                    color[path.pop()] = 2
                    iters.pop()
                    continue
                if dep not in self.nodes:
                    continue
                state = color.get(dep)
                if state == 1:
                    loop = [*path[path.index(dep) :], dep]
                    return list(reversed(loop))  # dependency order: upstream first
                if state is None:
                    color[dep] = 1
                    path.append(dep)
                    iters.append(iter(self.nodes[dep].deps))
        return None

    def order(self) -> list[str]:
        """Keys in an order where every node comes after what it depends on (stable, Kahn)."""
        waiting = {key: len(node.deps) for key, node in self.nodes.items()}
        dependents = self.dependents()
        ready = [key for key, n in waiting.items() if n == 0]
        out: list[str] = []
        while ready:
            key = ready.pop(0) if len(ready) < 64 else ready.pop()
            out.append(key)
            for child in dependents[key]:
                waiting[child] -= 1
                if waiting[child] == 0:
                    ready.append(child)
        return out


_SIGNATURE_CACHE: dict[Any, inspect.Signature | None] = {}
# (id of a cached signature, positional count, keywords) -> the signature (held, so the id stays its own)
_BINDS_OK: dict[tuple[Any, ...], inspect.Signature] = {}


def _signature(fn: Any) -> inspect.Signature | None:
    try:
        cached = _SIGNATURE_CACHE.get(fn, False)
    except TypeError:  # unhashable callable object
        cached = False
    if cached is not False:
        return cached  # type: ignore[return-value]
    try:
        sig: inspect.Signature | None = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: cannot check, let it run
        sig = None
    if len(_SIGNATURE_CACHE) > 4096:
        _SIGNATURE_CACHE.clear()
    try:
        _SIGNATURE_CACHE[fn] = sig
    except TypeError:
        pass
    return sig


def check_signature(spec: TaskSpec, args: tuple[Any, ...], kwargs: dict[str, Any], after: tuple[str, ...] = ()) -> None:
    """Raise :class:`SignatureError` if ``spec.fn`` cannot be called with ``args``/``kwargs``."""
    sig = _signature(spec.fn)
    if sig is None:
        return
    # binding depends only on how many positional arguments and which keywords: a fan-out of
    # 10,000 tasks of one function binds once
    # (by the signature's identity: hashing a Signature walks its parameters every time)
    shape = (id(sig), len(args), tuple(kwargs))
    if _BINDS_OK.get(shape) is sig:
        return
    try:
        sig.bind(*args, **kwargs)
        if len(_BINDS_OK) > 4096:
            _BINDS_OK.clear()
        _BINDS_OK[shape] = sig
    except TypeError as exc:
        given = [a.key if isinstance(a, Ref) else type(a).__name__ for a in args]
        params = ", ".join(_param_text(p) for p in sig.parameters.values())
        fn_name = getattr(spec.fn, "__name__", spec.name)
        hint = (
            "A task receives the outputs of its `requires=[...]` tasks as positional arguments, in "
            "that order. For a dependency that only orders (runs before, passes nothing), use "
            "`after=[...]` instead; or add a parameter to receive the output."
        )
        raise SignatureError(
            f"Task {spec.name!r} cannot be called as declared: {fn_name}({params}) was given "
            f"{len(args)} positional input(s) {given}"
            + (f" and keywords {sorted(kwargs)}" if kwargs else "")
            + (f" (ordering-only after={list(after)})" if after else "")
            + f" — {exc}. {hint}",
            task=spec.name,
        ) from None


def _param_text(param: inspect.Parameter) -> str:
    prefix = "*" if param.kind is param.VAR_POSITIONAL else "**" if param.kind is param.VAR_KEYWORD else ""
    default = "" if param.default is param.empty else f"={param.default!r}"
    return f"{prefix}{param.name}{default}"
