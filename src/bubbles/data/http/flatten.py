"""Find the records in a JSON body, and flatten nested objects into columns."""

from __future__ import annotations

from typing import Any

__all__ = ["find_path", "flatten_record"]

_MISSING = object()


def split_path(path: str | None) -> list[str]:
    """``"$.data.items"`` / ``"data.items"`` -> ``["data", "items"]``; ``None``, ``""`` or ``"$"`` -> ``[]``."""
    if not path or path == "$":
        return []
    if path.startswith("$."):
        path = path[2:]
    return path.split(".")


def find_path(body: Any, path: str | None, default: Any = _MISSING) -> Any:
    """The value at dotted ``path`` in ``body`` (list items by number: ``"results.0.rows"``).

    Raises ``KeyError`` naming the first missing step when there is no default.

    Example:
        >>> find_path({"data": {"items": [1]}}, "data.items")
        [1]
    """
    value = body
    for step in split_path(path):
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.lstrip("-").isdigit() and -len(value) <= int(step) < len(value):
            value = value[int(step)]
        else:
            if default is not _MISSING:
                return default
            raise KeyError(step)
    return value


def flatten_record(record: dict[str, Any], sep: str = "__") -> dict[str, Any]:
    """Nested objects become columns joined by ``sep``; lists stay as they are.

    Example:
        >>> flatten_record({"id": 1, "user": {"name": "a", "geo": {"lat": 1.5}}})
        {'id': 1, 'user__name': 'a', 'user__geo__lat': 1.5}
    """
    out: dict[str, Any] = {}

    def walk(prefix: str, value: dict[str, Any]) -> None:
        for key, item in value.items():
            name = f"{prefix}{sep}{key}" if prefix else str(key)
            if isinstance(item, dict):
                # An empty object has no columns to give; it reads as null rather than an empty struct.
                if item:
                    walk(name, item)
                else:
                    out[name] = None
            else:
                out[name] = item

    walk("", record)
    return out
