"""connect(): URLs, named connections, secrets, failures, pooling, pickling, fan-out."""

from __future__ import annotations

import pickle
import threading
import time

import pyarrow as pa
import pytest

import bubbles
import bubbles.data.db as db
from bubbles._errors import ConfigError, RunFailed
from bubbles.config import env_var_for, load_config
from bubbles.data.db.testing import TempPostgres
from bubbles.data.db.url import parse_url


def run_query(query: str, conn: db.Connection) -> pa.Table:
    return db.read_sql(conn, query)


def test_parse_urls() -> None:
    spec = parse_url("postgresql://etl@db.internal:6543/analytics?sslmode=require&pool_size=8")
    assert (spec.host, spec.port, spec.user, spec.database) == ("db.internal", 6543, "etl", "analytics")
    assert spec.params == {"sslmode": "require"} and spec.options == {"pool_size": "8"}
    assert spec.libpq_uri() == "postgresql://etl@db.internal:6543/analytics?sslmode=require"
    assert parse_url("duckdb:///:memory:").path == ":memory:"
    assert parse_url("sqlite:///data/x.db").path == "data/x.db"
    assert parse_url("sqlite:////abs/x.db").path == "/abs/x.db"
    with pytest.raises(ConfigError, match="Unknown database scheme 'mysql'"):
        parse_url("mysql://x@y/z")


def test_literal_password_in_code_is_refused_and_masked(home) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=r"literal password") as info:
        db.connect("postgresql://etl:hunter2secret@127.0.0.1:1/analytics")
    assert "hunter2secret" not in str(info.value)
    assert bubbles._secrets.mask("pw is hunter2secret") == "pw is ***"


def test_password_reference_resolves_and_never_shows(home, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SHOP_PW", "p@ss/w:rd?x")
    spec = parse_url("postgresql://etl:${SHOP_PW}@h:5432/shop")
    assert spec.password is not None and spec.password.get() == "p@ss/w:rd?x"
    assert "p@ss" not in repr(spec) and "p@ss" not in spec.redacted
    assert spec.redacted == "postgresql://etl:***@h:5432/shop"
    assert "p%40ss%2Fw%3Ard%3Fx" in spec.libpq_uri()
    monkeypatch.delenv("SHOP_PW")
    with pytest.raises(ConfigError, match="Secret 'NOPE' is not set"):
        parse_url("postgresql://etl:${NOPE}@h/shop")


def test_password_from_secrets_file(home, pg_url: str, pg_server: TempPostgres, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("BUBBLES_TEST_PGPASSWORD")
    home.mkdir(parents=True, exist_ok=True)
    (home / "secrets.toml").write_text(f'BUBBLES_TEST_PGPASSWORD = "{pg_server.password}"\n')
    with db.connect(pg_url) as conn:
        assert db.read_sql(conn, "SELECT 1 AS x").to_pylist() == [{"x": 1}]
        assert pg_server.password not in repr(conn)


def test_named_connections_from_toml_and_env(home, tmp_path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "bubbles.toml").write_text(
        '[connections]\nlocal = "duckdb:///local.duckdb"\n\n'
        '[connections.warehouse]\nurl = "duckdb:///wh.duckdb"\n\n[sources.api]\nurl = "http://127.0.0.1:1/health"\n'
    )
    sub = tmp_path / "jobs"
    sub.mkdir()
    monkeypatch.chdir(sub)  # found from a subfolder
    cfg = load_config()
    assert cfg.connections["local"] == f"duckdb:///{tmp_path.resolve()}/local.duckdb"  # relative to bubbles.toml
    assert cfg.sources["api"]["url"].endswith("/health")
    with db.connect("warehouse") as conn:
        assert conn.dialect == "duckdb" and conn.name == "warehouse"
        assert conn.spec.path == str(tmp_path.resolve() / "wh.duckdb")
    # production: the same name, pointed at PostgreSQL by the environment (a literal password is fine there)
    real = pg_url.replace("${BUBBLES_TEST_PGPASSWORD}", "bubbles-test-pw")
    monkeypatch.setenv(env_var_for("warehouse"), real)
    assert env_var_for("warehouse") == "BUBBLES_CONN_WAREHOUSE"
    with db.connect("warehouse") as conn:
        assert conn.dialect == "postgresql"
        assert "bubbles-test-pw" not in repr(conn)
        db.write_table(conn, "t", pa.table({"a": [1]}))
    with pytest.raises(ConfigError, match=r"No connection named 'nope' \(known: local, warehouse\)"):
        db.connect("nope")


def test_table_options_become_libpq_params(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bubbles.toml"
    path.write_text(
        '[connections.w]\nurl = "postgresql://etl:${PW}@h/db"\nsslmode = "verify-full"\nsslrootcert = "/ca.pem"\npool_size = 2\n'
    )
    url = load_config(path).connections["w"]
    assert url == "postgresql://etl:${PW}@h/db?sslmode=verify-full&sslrootcert=%2Fca.pem&pool_size=2"


def test_wrong_password_names_host_and_database_not_password(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUBBLES_TEST_PGPASSWORD", "wrong-secret-123")
    with pytest.raises(db.ConnectionFailed) as info:
        db.connect(pg_url)
    text = str(info.value)
    assert "password authentication failed" in text and "127.0.0.1" in text and pg_url.rsplit("/", 1)[1] in text
    assert "wrong-secret-123" not in text and "wrong-secret-123" not in repr(info.value.__dict__)
    assert info.value.transient is True
    assert pickle.loads(pickle.dumps(info.value)).database == info.value.database


def test_server_down_is_retried_by_the_task_policy(home) -> None:  # type: ignore[no-untyped-def]
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    attempts = []

    def extract() -> None:
        attempts.append(1)
        db.connect(f"postgresql://etl@127.0.0.1:{port}/shop?connect_timeout=2")

    wf = bubbles.Workflow("down")
    wf.add_task(extract, retries=2, retry_delay=0.01)
    with pytest.raises(RunFailed) as info:
        wf.run(executor="serial")
    assert len(attempts) == 3
    err = info.value.result.tasks["extract"].error
    assert "database 'shop' on 127.0.0.1" in str(err) and "Connection refused" in str(err)


def test_pool_lends_one_connection_per_thread(pg_url: str) -> None:
    with db.connect(pg_url, pool_size=3) as conn:
        pids: set[int] = set()
        barrier = threading.Barrier(3)

        def work() -> None:
            with conn.session() as s:
                barrier.wait(timeout=10)
                pids.add(s.query_all("SELECT pg_backend_pid()")[0][0])

        threads = [threading.Thread(target=work) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(pids) == 3
        # returned to the pool, reused: no new backend for the next call
        with conn.session() as s:
            assert s.query_all("SELECT pg_backend_pid()")[0][0] in pids


def test_connection_pickles_without_its_password(pg_url: str, pg_server: TempPostgres) -> None:
    with db.connect(pg_url) as conn:
        blob = pickle.dumps(conn)
        assert pg_server.password.encode() not in blob
        again = pickle.loads(blob)
        assert db.read_sql(again, "SELECT 2 AS x").to_pylist() == [{"x": 2}]
        again.close()


def test_parallel_extraction_through_fan_out(pg_url: str) -> None:
    with db.connect(pg_url, pool_size=4) as conn:
        for i in range(4):
            db.write_table(conn, f"t{i}", pa.table({"id": list(range(i + 1))}))
        conn.execute("CREATE FUNCTION slow_id(x bigint) RETURNS bigint AS 'SELECT pg_sleep(0.3); SELECT x' LANGUAGE sql")
        start = time.perf_counter()
        data = db.read_tables(conn, ["t0", "t1", "t2", "t3"], max_concurrent=4)
        assert {k: v.num_rows for k, v in data.items()} == {"t0": 1, "t1": 2, "t2": 3, "t3": 4}
        # the same written by hand with Workflow.map: four queries overlap on four pooled connections
        wf = bubbles.Workflow("extract")
        wf.map(
            run_query,
            [f"SELECT slow_id(id) AS id FROM t{i}" for i in range(4)],
            kwargs={"conn": conn},
            max_concurrent=4,
            name="q",
        )
        start = time.perf_counter()
        result = wf.run(executor="threads", max_workers=4)
        elapsed = time.perf_counter() - start
        assert [t.num_rows for t in result.tasks["q"].result] == [1, 2, 3, 4]
        assert elapsed < 2.4, (
            f"the four queries (0.3 s per row, 10 rows: 3 s one after the other) should overlap; took {elapsed:.1f} s"
        )


def test_map_on_processes_reconnects(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/p.sqlite"  # DuckDB files take one writer process; SQLite files are shared
    with db.connect(url) as conn:
        db.write_table(conn, "t", pa.table({"id": [1, 2, 3]}))
    wf = bubbles.Workflow("procs")
    wf.map(run_query, ["SELECT count(*) AS n FROM t", "SELECT max(id) AS n FROM t"], kwargs={"conn": db.connect(url)}, name="q")
    result = wf.run(executor="processes", max_workers=2)
    assert [t.column("n").to_pylist()[0] for t in result.tasks["q"].result] == [3, 3]


def test_reprs_and_errors_show_no_secret(pg_url: str, pg_server: TempPostgres) -> None:
    with db.connect(pg_url) as conn:
        assert repr(conn).startswith("<PostgresConnection postgresql://bubbles:***@127.0.0.1:")
        with pytest.raises(db.QueryError) as info:
            db.read_sql(conn, "SELECT * FROM missing_table WHERE x = ?", [1])
        assert pg_server.password not in str(info.value)
        assert 'relation "missing_table" does not exist' in str(info.value)


def test_query_error_inside_a_task_names_the_task(pg_url: str, home) -> None:  # type: ignore[no-untyped-def]
    def extract_orders() -> None:
        db.read_sql(pg_url, "SELECT id FROM orders WHERE")

    wf = bubbles.Workflow("names")
    wf.add_task(extract_orders, retries=2, retry_delay=0.01)
    result = wf.run(raise_on_error=False, executor="serial")
    run = result.tasks["extract_orders"]
    assert run.attempts == 1, "a syntax error is not transient: no retries"
    text = str(run.error)
    assert "in task 'extract_orders'" in text and "syntax error at end of input" in text
    assert "SELECT id FROM orders WHERE" in text


def test_parameterised_postgres_reads_bind_every_type(pg_url: str) -> None:
    import datetime as dt
    from decimal import Decimal

    values = [
        7, 2.5, Decimal("1.25"), "it's", True, None,
        dt.date(2024, 1, 2), dt.datetime(2024, 1, 2, 3, 4, 5, 678901), dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        dt.time(1, 2, 3), b"\x00\xff",
    ]  # fmt: skip
    with db.connect(pg_url) as conn:
        row = db.read_sql(conn, "SELECT " + ", ".join(f"? AS c{i}" for i in range(len(values))), values).to_pylist()[0]
        got = list(row.values())
        assert got[:6] == [7, 2.5, "1.25", "it's", True, None]  # an unconstrained NUMERIC reads back as text
        assert got[6:10] == values[6:10] and got[10] == b"\x00\xff"
        # a '$1' inside a string literal stays text; the value after it is still bound
        assert db.read_sql(conn, "SELECT '$1' AS a, ? AS b", ["x"]).to_pylist() == [{"a": "$1", "b": "x"}]


def test_tls_options_reach_libpq(pg_url: str) -> None:
    # the test server has no TLS: sslmode=require must fail there, which shows the option got through
    with pytest.raises(db.ConnectionFailed, match="does not support SSL"):
        db.connect(pg_url + "?sslmode=require")
    with db.connect(pg_url + "?sslmode=disable&application_name=bubbles-test") as conn:
        assert db.read_sql(conn, "SELECT current_setting('application_name') AS a").to_pylist() == [{"a": "bubbles-test"}]


def test_a_connection_error_pickles_where_tblib_pickles_exceptions(pg_url: str) -> None:
    """Dask installs tblib's exception pickling, which keeps an error's context: a ConnectionFailed raised while
    ADBC's error was being handled failed to unpickle after Dask tests had run (ADBC's __init__ wants keyword
    arguments). The translated error keeps no driver exception. In a fresh interpreter, so that tblib's global
    hook stays out of the other tests."""
    import subprocess
    import sys

    code = (
        "import os, pickle\n"
        "import adbc_driver_manager\n"
        "import bubbles.data.db as db\n"
        "from tblib import pickling_support\n"
        "pickling_support.install()  # (after the classes exist, as when distributed is imported later)\n"
        "os.environ['BUBBLES_TEST_PGPASSWORD'] = 'wrong-secret-123'\n"
        "try:\n"
        f"    db.connect({pg_url!r})\n"
        "except db.ConnectionFailed as exc:\n"
        "    assert exc.__context__ is None and exc.__cause__ is None, repr(exc.__context__)  # no driver error kept\n"
        "    back = pickle.loads(pickle.dumps(exc))\n"
        "    assert type(back) is type(exc) and back.database == exc.database and back.transient, back\n"
        "    print('round trip ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and "round trip ok" in done.stdout, done.stderr[-2000:]
