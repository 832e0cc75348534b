"""The command line's rich consoles: tables keep their columns in CI logs and pipes."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["console"]

_PIPE_WIDTH = 160  # not a terminal: wide enough that tables are not cut to 80 columns


def console(*, stderr: bool = False) -> Any:
    """A ``rich`` console on stdout (or stderr), as wide as the terminal, or 160 columns in a pipe."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return Console(stderr=stderr, width=None if tty else _PIPE_WIDTH)
