"""The ``bubbles`` command."""
