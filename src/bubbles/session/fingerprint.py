"""Fingerprints: what makes a task's output the same as last time — its code, its inputs, its parameters.

Resume and the cache reuse a stored output only when its key matches, and a key is never
partial: a value that cannot be fingerprinted is ``None``, and the caller treats that as "not
the same" (a cache miss, with a warning). Every fingerprint is an ``xxh3-128`` hex digest.

* **Values** (:func:`fingerprint_value`): Arrow tables and record batches from their schema and
  buffers (column names and types count, so a rename changes it), pandas and polars frames
  through Arrow, numpy arrays from their bytes, dtype and shape; ``None``, booleans, numbers,
  strings, bytes, dates and times by value; lists, tuples, dicts and sets by their items
  (a dict's keys in order); dataclasses by their fields; a stored checkpoint by the fingerprint
  it was stored with. Never from a pickle: two pickles of one table can differ, and a pickle
  would hash a connection's identity rather than what it reads.
* **Code** (:func:`fingerprint_code`): a task function's bytecode, constants and names, the
  values it closes over (by :func:`fingerprint_value`), and what it uses from its module —
  functions and classes of the user's own code by their code, installed packages by name and
  version, plain constants by value. Editing the function, a helper it calls, or a constant it
  reads changes the fingerprint; re-running the same script does not.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import os
import sys
import types
from collections.abc import Callable
from typing import Any

__all__ = ["combine", "fingerprint_code", "fingerprint_value"]

_MAX_DEPTH = 8
_BUBBLES_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _hasher() -> Any:
    import xxhash

    return xxhash.xxh3_128()


def combine(*parts: str | None) -> str | None:
    """One fingerprint of several (``None`` if any is unknown: a key is never partial)."""
    if any(p is None for p in parts):
        return None
    h = _hasher()
    for part in parts:
        h.update(str(part).encode())
        h.update(b"\0")
    return str(h.hexdigest())


def fingerprint_value(value: Any) -> str | None:
    """A fingerprint of ``value``'s content, or ``None`` if it cannot be known (see the module docstring)."""
    h = _hasher()
    try:
        ok = _feed(h, value, 0)
    except Exception:  # a value whose parts cannot be read: unknown, never a partial key
        return None
    return str(h.hexdigest()) if ok else None


def _feed(h: Any, value: Any, depth: int) -> bool:
    if depth > _MAX_DEPTH:
        return False
    kind = type(value)
    if value is None or kind in (bool, int, float, complex):
        h.update(f"{kind.__name__}:{value!r};".encode())
        return True
    if kind is str:
        h.update(b"s")
        h.update(value.encode("utf-8", "surrogatepass"))
        h.update(b";")
        return True
    if kind in (bytes, bytearray, memoryview):
        h.update(b"b")
        h.update(bytes(value))
        h.update(b";")
        return True
    if kind in (dt.date, dt.datetime, dt.time, dt.timedelta, decimal.Decimal):
        h.update(f"{kind.__name__}:{value!r};".encode())
        return True
    stored = getattr(value, "__bubbles_fingerprint__", None)
    if isinstance(stored, str):  # a checkpoint reference: what it was stored with
        h.update(b"fp:" + stored.encode())
        return True
    if kind in (list, tuple):
        h.update(f"{kind.__name__}[{len(value)}]".encode())
        return all(_feed(h, v, depth + 1) for v in value)
    if kind is dict:
        h.update(f"dict[{len(value)}]".encode())
        return all(_feed(h, k, depth + 1) and _feed(h, v, depth + 1) for k, v in value.items())
    if kind in (set, frozenset):
        parts = [fingerprint_value(v) for v in value]
        if any(p is None for p in parts):
            return False
        h.update(f"set[{len(value)}]".encode() + "".join(sorted(parts)).encode())  # type: ignore[arg-type]
        return True
    module = kind.__module__ or ""
    if module.startswith("pyarrow"):
        return _feed_arrow(h, value)
    if module.startswith("pandas") and hasattr(value, "to_numpy") and hasattr(value, "columns"):
        import pyarrow as pa

        return _feed_arrow(h, pa.Table.from_pandas(value, preserve_index=True))
    if module.startswith("polars") and hasattr(value, "to_arrow"):
        return _feed_arrow(h, value.to_arrow())
    if module.startswith("numpy") and hasattr(value, "tobytes") and hasattr(value, "dtype"):
        h.update(f"np:{value.dtype}:{getattr(value, 'shape', ())};".encode())
        h.update(value.tobytes())
        return True
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        h.update(f"dc:{kind.__module__}.{kind.__qualname__}".encode())
        return all(_feed(h, getattr(value, f.name), depth + 1) for f in dataclasses.fields(value))
    return False


def _feed_arrow(h: Any, value: Any) -> bool:
    import pyarrow as pa

    if isinstance(value, pa.RecordBatch):
        value = pa.Table.from_batches([value])
    if isinstance(value, (pa.Array, pa.ChunkedArray)):
        value = pa.table({"_": value})
    if not isinstance(value, pa.Table):
        return False  # a stream (RecordBatchReader) is consumed by reading: not fingerprinted here
    h.update(b"arrow:")
    h.update(value.schema.serialize().to_pybytes())
    h.update(f"rows={value.num_rows};".encode())
    for column in value.columns:
        for chunk in column.chunks:
            _feed_array(h, chunk)
    return True


def _feed_array(h: Any, array: Any) -> None:
    # the buffers' bytes, with offsets and lengths: two arrays with equal values but different
    # slicing hash the same only if their data is laid out the same, which is what we store
    h.update(f"a:{array.offset}:{len(array)}:{array.null_count};".encode())
    for buffer in array.buffers():  # (its children's buffers included)
        if buffer is None:
            h.update(b"-")
        else:
            h.update(memoryview(buffer))
    dictionary = getattr(array, "dictionary", None)
    if dictionary is not None:
        _feed_array(h, dictionary)


# -- code -------------------------------------------------------------------------------------------
def fingerprint_code(fn: Callable[..., Any]) -> str | None:
    """A fingerprint of a task function's code and what it uses (see the module docstring)."""
    h = _hasher()
    try:
        ok = _feed_function(h, fn, set(), 0)
    except Exception:
        return None
    return str(h.hexdigest()) if ok else None


def _user_module(module: types.ModuleType | None) -> bool:
    from ..engine.executors.dask import _is_local_code

    return module is not None and (module.__name__ == "__main__" or _is_local_code(module))


def _user_code(value: Any) -> bool:
    """Whether a function or class is the user's own code, fingerprinted by its code (not its name).

    A file run by ``bubbles run`` executes as a module that is not in ``sys.modules`` (so its
    functions ship by value); its functions are known by the ``__file__`` of their globals.
    """
    module = sys.modules.get(getattr(value, "__module__", "") or "")
    if module is not None:
        return _user_module(module)
    globs = getattr(value, "__globals__", None)
    if globs is None and isinstance(value, type):
        methods = (m for m in vars(value).values() if isinstance(m, types.FunctionType))
        globs = next((m.__globals__ for m in methods), None)
    file = (globs or {}).get("__file__")
    if not isinstance(file, str):
        return False
    from ..engine.executors.dask import _is_local_file

    return not os.path.abspath(file).startswith(_BUBBLES_DIR) and _is_local_file(file)


def _feed_function(h: Any, fn: Any, seen: set[int], depth: int) -> bool:
    if id(fn) in seen:
        h.update(b"recursion;")
        return True
    seen.add(id(fn))
    inner = getattr(fn, "__bubbles_spec__", None)
    fn = inner.fn if inner is not None else fn
    if hasattr(fn, "func") and hasattr(fn, "args"):  # functools.partial
        h.update(b"partial:")
        return _feed_function(h, fn.func, seen, depth) and _feed(h, list(fn.args), 0) and _feed(h, dict(fn.keywords or {}), 0)
    fn = getattr(fn, "__wrapped__", fn)
    code = getattr(fn, "__code__", None)
    if code is None:  # a builtin, a callable object
        call = vars(type(fn)).get("__call__")  # (an instance whose class defines __call__)
        if call is not None and hasattr(call, "__code__"):
            h.update(f"callable:{type(fn).__qualname__};".encode())
            return _feed_function(h, call, seen, depth) and _feed_state(h, fn)
        h.update(f"builtin:{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))};".encode())
        return True
    _feed_code(h, code)
    for default in fn.__defaults__ or ():
        if not _feed(h, default, 0):
            return False
    for cell in fn.__closure__ or ():
        try:
            content = cell.cell_contents
        except ValueError:  # an empty cell
            h.update(b"empty-cell;")
            continue
        if not _feed_used(h, content, seen, depth):
            return False
    globs = getattr(fn, "__globals__", {})
    for name in sorted(_global_names(code)):
        if name in globs:
            h.update(f"g:{name}=".encode())
            if not _feed_used(h, globs[name], seen, depth):
                return False
    return True


def _feed_state(h: Any, obj: Any) -> bool:
    state = getattr(obj, "__dict__", None)
    return True if state is None else _feed(h, dict(sorted(state.items())), 0)


def _feed_used(h: Any, value: Any, seen: set[int], depth: int) -> bool:
    """Something a function reads from its closure or module."""
    if isinstance(value, types.ModuleType):
        return _feed_module(h, value)
    if isinstance(value, (types.FunctionType, types.MethodType)) or hasattr(value, "__bubbles_spec__"):
        module = sys.modules.get(getattr(value, "__module__", "") or "")
        if depth < _MAX_DEPTH and _user_code(value):
            return _feed_function(h, value, seen, depth + 1)
        h.update(f"fn:{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', '')};".encode())
        return _feed_module(h, module) if module is not None else True
    if isinstance(value, type):
        module = sys.modules.get(value.__module__)
        if depth < _MAX_DEPTH and _user_code(value):
            h.update(f"class:{value.__qualname__};".encode())
            for _, member in sorted(vars(value).items()):
                if isinstance(member, types.FunctionType) and not _feed_function(h, member, seen, depth + 1):
                    return False
            return True
        h.update(f"class:{value.__module__}.{value.__qualname__};".encode())
        return _feed_module(h, module) if module is not None else True
    if fingerprint_value(value) is not None:
        return _feed(h, value, 0)
    # something stateful (a connection, a client): its kind, not its content
    h.update(f"object:{type(value).__module__}.{type(value).__qualname__};".encode())
    return True


def _feed_module(h: Any, module: Any) -> bool:
    name = getattr(module, "__name__", "?")
    top = name.partition(".")[0]
    version = getattr(sys.modules.get(top), "__version__", "")
    h.update(f"module:{name}@{version};".encode())
    return True


def _feed_code(h: Any, code: types.CodeType) -> None:
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    h.update(repr(code.co_varnames).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _feed_code(h, const)
        else:
            h.update(repr(const).encode())


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names
