"""Alias of :mod:`bubbles` under the distribution's name: ``from pybubbles import bubbles, task``.

``bubbles`` here, as in :mod:`bubbles`, is the ``@bubbles`` flow decorator and also carries the
package's public names, so seed 001's ``@bubbles`` and seed 002's ``bubbles.Pipeline()`` both work.
"""

from bubbles import *  # noqa: F403
from bubbles import __all__, __version__  # noqa: F401
