"""The database layer adds nothing heavy to `import bubbles`: drivers load when a connection opens."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_db_layer_imports_no_driver() -> None:
    code = (
        "import sys, bubbles.data.db, bubbles.config, bubbles.cli.db; "
        "heavy = ['pyarrow', 'duckdb', 'adbc_driver_postgresql', 'adbc_driver_manager', 'psycopg', 'httpx', 'pandas', 'polars']; "
        "print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
