"""``python -m bubbles`` is the ``bubbles`` command."""

from .cli.main import main

main()
