"""Alias of :mod:`bubbles` under the distribution's name: ``from pybubbles import bubbles, task``."""

from bubbles import *  # noqa: F403
from bubbles import __all__, __version__  # noqa: F401
