"""Find the workflow, pipeline or ``@bubbles`` flow defined in a Python file.

``FILE[:NAME]``: the file is executed as a module named ``__bubbles__`` (so its
``if __name__ == "__main__":`` block does not run), then NAME picks the object; without NAME the
file must define exactly one.
"""

from __future__ import annotations

import builtins
import json
import os
import sys
import types
from pathlib import Path
from typing import Any

from .._errors import ConfigError

__all__ = ["load_target", "load_targets", "parse_params"]


def _runnable_types() -> tuple[type, ...]:
    from ..api.decorators import FlowFunction
    from ..api.pipeline import Pipeline
    from ..api.workflow import Workflow

    return (Workflow, Pipeline, FlowFunction)


def _load_error(path: str, file: Path, exc: Exception) -> ConfigError:
    """What went wrong while running ``file`` to find its workflows, at the line of the file it went wrong."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(file)]
    line = frames[-1].lineno if frames else None
    where = f", line {line}" if line else ""
    hint = (
        " Install the package it imports in this environment." if isinstance(exc, ImportError) else ""
    )
    return ConfigError(
        f"{path}{where}: running the file failed: {type(exc).__name__}: {exc}.{hint}", source=path, line=line
    )


def load_targets(spec: str, command: str = "run") -> list[tuple[str, Any]]:
    """Load ``FILE[:NAME]``: ``[(NAME, object)]``, or every runnable object when no NAME is given."""
    path, _, name = spec.partition(":") if not os.path.exists(spec) else (spec, "", "")
    file = Path(path)
    if not file.exists():
        raise ConfigError(f"No such file: {path!r}. Pass the Python file that defines your workflow: bubbles {command} etl.py")
    sys.path.insert(0, str(file.resolve().parent))
    # Executed as module ``__bubbles__``, which is in sys.modules only while the file runs (what
    # @dataclass and typing look up as it defines classes), not after: nothing can then import it,
    # so cloudpickle ships its functions and classes by value to worker processes and Dask.
    module = types.ModuleType("__bubbles__")
    module.__file__ = str(file.resolve())
    namespace: dict[str, Any] = module.__dict__
    namespace["__builtins__"] = builtins
    try:
        # dont_inherit: the file gets its own __future__ imports, not this module's
        code = compile(file.read_bytes(), str(file), "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise ConfigError(f"{path}, line {exc.lineno}: syntax error: {exc.msg}", source=path, line=exc.lineno) from None
    previous = sys.modules.get("__bubbles__")
    sys.modules["__bubbles__"] = module
    try:
        exec(code, namespace)
    except SyntaxError as exc:
        raise ConfigError(f"{path}, line {exc.lineno}: syntax error: {exc.msg}", source=path, line=exc.lineno) from None
    except Exception as exc:  # an import that fails, a typo at module level: where in the file, not our frames
        raise _load_error(path, file, exc) from None
    finally:
        if previous is None:
            sys.modules.pop("__bubbles__", None)
        else:
            sys.modules["__bubbles__"] = previous
    kinds = _runnable_types()
    found = {k: v for k, v in namespace.items() if isinstance(v, kinds) and not k.startswith("_")}
    if name:
        if name not in namespace:
            raise ConfigError(f"{path} defines no {name!r}. Runnable objects in it: {', '.join(found) or 'none'}.", source=path)
        if not isinstance(namespace[name], kinds):
            raise ConfigError(
                f"{path}:{name} is a {type(namespace[name]).__name__}, not a Workflow, Pipeline or @bubbles function."
            )
        return [(name, namespace[name])]
    if not found:
        raise ConfigError(
            f"{path} defines no Workflow, Pipeline or @bubbles function at module level. "
            f"Define one (e.g. `wf = Workflow('etl')`), or name it: bubbles {command} FILE:NAME.",
            source=path,
        )
    return list(found.items())


def load_target(spec: str, command: str = "run") -> tuple[str, Any]:
    """Load ``FILE[:NAME]`` and return the one ``(name, object)`` it designates."""
    targets = load_targets(spec, command)
    if len(targets) > 1:
        names = ", ".join(n for n, _ in targets)
        raise ConfigError(
            f"{spec} defines several runnable objects ({names}); pick one: bubbles {command} {spec}:NAME", source=spec
        )
    return targets[0]


def parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` pairs; values that parse as JSON (numbers, true, lists...) are decoded."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ConfigError(
                f"--param {pair!r}: expected key=value with a Python identifier as key, e.g. --param day=2024-01-31"
            )
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params
