"""The public surface: curated __all__, objects presented as `bubbles.X`, a light import."""

from __future__ import annotations

import subprocess
import sys

import bubbles

HEAVY = [
    "pyarrow",
    "duckdb",
    "dask",
    "distributed",
    "pandas",
    "polars",
    "httpx",
    "psycopg",
    "adbc_driver_manager",
    "plotly",
    "matplotlib",
    "prometheus_client",
    "cloudpickle",
    "click",
    "rich",
    "numpy",
    "tenacity",
    "fsspec",
]


def test_all_is_sorted_and_complete() -> None:
    names = [n for n in bubbles.__all__ if n != "__version__"]
    assert names == sorted(names, key=str.lower) or names == sorted(names)
    for name in bubbles.__all__:
        assert hasattr(bubbles, name), name


def test_public_objects_live_in_the_package() -> None:
    for name in bubbles.__all__:
        obj = getattr(bubbles, name)
        if isinstance(obj, type) or callable(obj):
            assert obj.__module__ == "bubbles", (name, obj.__module__)


def test_import_does_not_load_heavy_libraries() -> None:
    code = f"import sys, bubbles, pybubbles; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_version_is_exposed() -> None:
    import importlib.metadata

    assert bubbles.__version__ == importlib.metadata.version("pybubbles")
