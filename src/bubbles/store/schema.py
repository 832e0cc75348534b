"""The run store's tables: plain SQL, the same in SQLite and PostgreSQL.

Every column is documented here and in ``docs/store.md`` (whose example queries are run by the
tests). Times are epoch seconds (``DOUBLE PRECISION``); JSON columns hold text.

``runs``
    one row per run, written at its first instant (before any task starts):
    ``run_id`` (``20261122-031502-4f9a2c81``), ``workflow``, ``status`` (``running``, ``succeeded``,
    ``failed``, ``cancelled``, ``crashed``), ``started_at``, ``ended_at``, ``duration``,
    ``heartbeat_at`` (renewed every second while the run lives), ``lease_seconds`` (how old a
    heartbeat may get before a reader marks the run ``crashed``), ``host``, ``pid``,
    ``pid_started_at`` (to tell a reused pid apart), ``argv``, ``params`` (JSON), ``executor``,
    ``tasks_total``, ``error`` (the run's own error, masked), ``bubbles_version``.
``attempts``
    one row per task attempt that ran, plus one (``attempt`` 0) per task that never ran:
    ``run_id``, ``task``, ``attempt``, ``grp`` (its ``map``/``ParallelTask``), ``state``
    (``succeeded``, ``failed``, ``retrying`` — failed, another attempt followed —,
    ``upstream_failed``, ``skipped``, ``cancelled``), ``started_at``, ``ended_at``, ``duration``,
    ``worker``, ``error``, ``traceback`` (masked), ``delay`` (before the next attempt),
    ``rows_in``, ``rows_out`` (rows of data a task took and produced; empty when its input or
    output is not data), ``bytes_in``, ``bytes_out``, ``peak_memory`` (bytes), ``cpu_time``.
``tasks``
    a view: each task's last attempt (``attempts`` is its attempt number).
``metrics``
    custom metrics (``bubbles.log_metric``): ``run_id``, ``task``, ``attempt``, ``name``, ``value``.
``task_events``
    typed task events (``bubbles._events``) other than datasets: ``run_id``, ``task``,
    ``attempt``, ``seq``, ``kind``, ``payload`` (JSON).
``datasets``
    what tasks read and wrote, as the connectors report it: ``run_id``, ``task``, ``attempt``,
    ``direction`` (``read``/``write``), ``namespace`` and ``name`` (OpenLineage naming:
    ``file://host`` + ``/path``, ``postgres://host:5432`` + ``db.schema.table``), ``kind``
    (``file``, ``table``, ``api``, ``delivery``), ``format``, ``rows``, ``bytes``,
    ``content_hash``, ``schema`` (JSON), ``at``.
``lineage``
    where what tasks wrote came from (schema version 2), one row per edge, as the connectors and
    ``bubbles.sql`` derive it: ``run_id``, ``task``, ``attempt``, ``namespace``, ``name`` and
    ``field`` (the dataset written and its column), ``input_namespace``, ``input_name`` and
    ``input_field`` (what it came from), ``transformation`` (``IDENTITY``, ``TRANSFORMATION``),
    ``note`` (why lineage is table-level only, e.g. a query sqlglot cannot parse), ``at``.
    ``field`` and ``input_field`` are empty for table-level edges.
``logs``
    captured ``logging`` records: ``run_id``, ``task``, ``attempt``, ``seq``, ``time``,
    ``level``, ``logger``, ``message`` (masked).
``resources``
    CPU and memory samples of the run's process tree: ``run_id``, ``time``, ``cpu_percent``,
    ``rss``, ``processes``.
``profiles``
    cProfile output per attempt (``--profile``): ``run_id``, ``task``, ``attempt``, ``format``, ``data``.
``watermarks``, ``pending_watermarks``
    incremental-load state: committed watermarks (``name``, ``value`` JSON, ``updated_at``,
    ``run_id``), and the proposals of runs not yet settled (``name``, ``run_id``, ``value``,
    ``proposed_at``), committed when the run succeeds and discarded when it fails or crashes.
``checkpoints``
    task outputs kept for resume and the cache: ``run_id``, ``task``, ``attempt``, ``key`` (the
    fingerprint of what the output depends on: code, parameters, inputs), ``code``, ``params``,
    ``inputs`` (JSON: upstream task → fingerprint of its output), ``fingerprint`` (of the output),
    ``format`` (``arrow``, ``pickle``, ``json``, ``plan``, ``none``), ``location`` (the file), ``value`` (a
    small output's JSON), ``bytes``, ``expires_at`` (a cached task's), ``at``, ``content_hash``
    (``xxh3:`` of the file: a file whose bytes differ is never reused).
``quality_results``
    one row per rule of a data contract checked over one batch (``bubbles.data.quality``):
    ``run_id``, ``task``, ``attempt``, ``contract``, ``rule`` (``amount.range``,
    ``table.row_count``), ``kind`` (``not_null``, ``unique``, ``range``, ``regex``, ``type``,
    ``accepted_values``, ``foreign_key``, ``row_count``, ``freshness``, ``sql``, ``dedup``, ...),
    ``columns`` (comma-separated), ``action`` (``warn``, ``quarantine``, ``fail``), ``rows_checked``, ``rows_failed``,
    ``rows_quarantined``, ``outcome`` (``passed``, ``warned``, ``quarantined``, ``failed``),
    ``observed`` (what a table rule saw), ``examples`` (JSON list of offending values, PII
    masked), ``source``, ``at``.
``quarantines``
    every append to a quarantine sink (bad lines of a reader, rows a contract rejected):
    ``run_id``, ``task``, ``attempt``, ``sink`` (a Parquet dataset folder, or ``URL#table``),
    ``sink_kind`` (``parquet``, ``table``), ``part`` (the file or table appended to),
    ``source``, ``contract``, ``rows``, ``at``.
``resumes``
    which run is resuming which (``run_id`` resumed, ``by_run``, the resuming process's ``host``,
    ``pid``, ``pid_started_at``, ``at``): a run is resumed by one run at a time.
``store_meta``
    ``key``/``value``: ``schema_version``.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "TABLE_COLUMNS"]

# Column order of the rows the writer hands to ``RunStore.write`` (the table's, for plain inserts).
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "runs": (
        "run_id",
        "workflow",
        "status",
        "started_at",
        "ended_at",
        "duration",
        "heartbeat_at",
        "lease_seconds",
        "host",
        "pid",
        "pid_started_at",
        "argv",
        "params",
        "executor",
        "tasks_total",
        "error",
        "bubbles_version",
    ),
    "attempts": (
        "run_id",
        "task",
        "attempt",
        "grp",
        "state",
        "started_at",
        "ended_at",
        "duration",
        "worker",
        "error",
        "traceback",
        "delay",
        "rows_in",
        "rows_out",
        "bytes_in",
        "bytes_out",
        "peak_memory",
        "cpu_time",
    ),
    "metrics": ("run_id", "task", "attempt", "name", "value"),
    "task_events": ("run_id", "task", "attempt", "seq", "kind", "payload"),
    "datasets": (
        "run_id",
        "task",
        "attempt",
        "direction",
        "namespace",
        "name",
        "kind",
        "format",
        "rows",
        "bytes",
        "content_hash",
        "schema",
        "at",
    ),
    "lineage": (
        "run_id",
        "task",
        "attempt",
        "namespace",
        "name",
        "field",
        "input_namespace",
        "input_name",
        "input_field",
        "transformation",
        "note",
        "at",
    ),
    "logs": ("run_id", "task", "attempt", "seq", "time", "level", "logger", "message"),
    "resources": ("run_id", "time", "cpu_percent", "rss", "processes"),
    "profiles": ("run_id", "task", "attempt", "format", "data"),
    "checkpoints": (
        "run_id",
        "task",
        "attempt",
        "key",
        "code",
        "params",
        "inputs",
        "fingerprint",
        "format",
        "location",
        "value",
        "bytes",
        "expires_at",
        "at",
        "content_hash",
    ),
    "quality_results": (
        "run_id",
        "task",
        "attempt",
        "contract",
        "rule",
        "kind",
        "columns",
        "action",
        "rows_checked",
        "rows_failed",
        "rows_quarantined",
        "outcome",
        "observed",
        "examples",
        "source",
        "at",
    ),
    "quarantines": ("run_id", "task", "attempt", "sink", "sink_kind", "part", "source", "contract", "rows", "at"),
    "resumes": ("run_id", "by_run", "host", "pid", "pid_started_at", "at"),
}

_T = "DOUBLE PRECISION"  # a time or a float: REAL in SQLite, float8 in PostgreSQL

_VERSION_1: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    f"""CREATE TABLE IF NOT EXISTS runs (
        run_id TEXT PRIMARY KEY, workflow TEXT NOT NULL, status TEXT NOT NULL,
        started_at {_T}, ended_at {_T}, duration {_T}, heartbeat_at {_T}, lease_seconds {_T},
        host TEXT, pid BIGINT, pid_started_at {_T}, argv TEXT, params TEXT, executor TEXT,
        tasks_total BIGINT, error TEXT, bubbles_version TEXT)""",
    "CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at)",
    "CREATE INDEX IF NOT EXISTS runs_workflow ON runs (workflow, started_at)",
    "CREATE INDEX IF NOT EXISTS runs_status ON runs (status)",
    f"""CREATE TABLE IF NOT EXISTS attempts (
        run_id TEXT NOT NULL, task TEXT NOT NULL, attempt BIGINT NOT NULL, grp TEXT, state TEXT NOT NULL,
        started_at {_T}, ended_at {_T}, duration {_T}, worker TEXT, error TEXT, traceback TEXT, delay {_T},
        rows_in BIGINT, rows_out BIGINT, bytes_in BIGINT, bytes_out BIGINT, peak_memory BIGINT, cpu_time {_T},
        PRIMARY KEY (run_id, task, attempt))""",
    f"""CREATE TABLE IF NOT EXISTS metrics (
        run_id TEXT NOT NULL, task TEXT NOT NULL, attempt BIGINT NOT NULL, name TEXT NOT NULL, value {_T},
        PRIMARY KEY (run_id, task, attempt, name))""",
    """CREATE TABLE IF NOT EXISTS task_events (
        run_id TEXT NOT NULL, task TEXT NOT NULL, attempt BIGINT NOT NULL, seq BIGINT NOT NULL, kind TEXT NOT NULL,
        payload TEXT)""",
    "CREATE INDEX IF NOT EXISTS task_events_run ON task_events (run_id, task)",
    f"""CREATE TABLE IF NOT EXISTS datasets (
        run_id TEXT NOT NULL, task TEXT NOT NULL, attempt BIGINT NOT NULL, direction TEXT NOT NULL,
        namespace TEXT NOT NULL, name TEXT NOT NULL, kind TEXT, format TEXT, rows BIGINT, bytes BIGINT,
        content_hash TEXT, schema TEXT, at {_T})""",
    "CREATE INDEX IF NOT EXISTS datasets_run ON datasets (run_id)",
    "CREATE INDEX IF NOT EXISTS datasets_name ON datasets (namespace, name)",
    f"""CREATE TABLE IF NOT EXISTS logs (
        run_id TEXT NOT NULL, task TEXT NOT NULL, attempt BIGINT NOT NULL, seq BIGINT NOT NULL, time {_T},
        level TEXT, logger TEXT, message TEXT)""",
    "CREATE INDEX IF NOT EXISTS logs_run ON logs (run_id, task)",
    f"""CREATE TABLE IF NOT EXISTS resources (
        run_id TEXT NOT NULL, time {_T} NOT NULL, cpu_percent {_T}, rss BIGINT, processes BIGINT)""",
    "CREATE INDEX IF NOT EXISTS resources_run ON resources (run_id)",
    """CREATE TABLE IF NOT EXISTS profiles (
        run_id TEXT NOT NULL, task TEXT NOT NULL, attempt BIGINT NOT NULL, format TEXT, data TEXT)""",
    "CREATE INDEX IF NOT EXISTS profiles_run ON profiles (run_id)",
    f"""CREATE TABLE IF NOT EXISTS watermarks (
        name TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at {_T} NOT NULL, run_id TEXT)""",
    f"""CREATE TABLE IF NOT EXISTS pending_watermarks (
        name TEXT NOT NULL, run_id TEXT NOT NULL, value TEXT NOT NULL, proposed_at {_T} NOT NULL,
        PRIMARY KEY (name, run_id))""",
    """CREATE VIEW tasks AS
        SELECT a.run_id, a.task, a.grp, a.state, a.attempt AS attempts, a.started_at, a.ended_at, a.duration,
               a.worker, a.error, a.rows_in, a.rows_out, a.bytes_in, a.bytes_out, a.peak_memory, a.cpu_time
        FROM attempts a
        WHERE a.attempt = (SELECT MAX(b.attempt) FROM attempts b WHERE b.run_id = a.run_id AND b.task = a.task)""",
)

# Each entry takes a store from version i to i + 1 (statements run in one transaction, in order).
# Never edit a released entry: add one. A view is dropped and created again when redefined.
_VERSION_2: tuple[str, ...] = (  # resume and the cache: kept task outputs
    f"""CREATE TABLE IF NOT EXISTS checkpoints (
        run_id TEXT NOT NULL, task TEXT NOT NULL, attempt BIGINT NOT NULL, key TEXT NOT NULL, code TEXT, params TEXT,
        inputs TEXT, fingerprint TEXT, format TEXT NOT NULL, location TEXT, value TEXT, bytes BIGINT, expires_at {_T},
        at {_T}, PRIMARY KEY (run_id, task))""",
    "CREATE INDEX IF NOT EXISTS checkpoints_key ON checkpoints (key)",
)

_VERSION_3: tuple[str, ...] = (  # lineage: where what tasks wrote came from
    f"""CREATE TABLE IF NOT EXISTS lineage (
        run_id TEXT NOT NULL, task TEXT NOT NULL, attempt BIGINT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
        field TEXT, input_namespace TEXT NOT NULL, input_name TEXT NOT NULL, input_field TEXT, transformation TEXT,
        note TEXT, at {_T})""",
    "CREATE INDEX IF NOT EXISTS lineage_run ON lineage (run_id)",
    "CREATE INDEX IF NOT EXISTS lineage_output ON lineage (namespace, name)",
    "CREATE INDEX IF NOT EXISTS lineage_input ON lineage (input_namespace, input_name)",
)

_VERSION_4: tuple[str, ...] = (  # data quality: contract results and quarantine appends
    f"""CREATE TABLE IF NOT EXISTS quality_results (
        run_id TEXT NOT NULL, task TEXT NOT NULL, attempt BIGINT NOT NULL, contract TEXT NOT NULL, rule TEXT NOT NULL,
        kind TEXT, columns TEXT, action TEXT, rows_checked BIGINT, rows_failed BIGINT, rows_quarantined BIGINT,
        outcome TEXT, observed TEXT, examples TEXT, source TEXT, at {_T})""",
    "CREATE INDEX IF NOT EXISTS quality_results_run ON quality_results (run_id, task)",
    "CREATE INDEX IF NOT EXISTS quality_results_rule ON quality_results (contract, rule, at)",
    f"""CREATE TABLE IF NOT EXISTS quarantines (
        run_id TEXT NOT NULL, task TEXT NOT NULL, attempt BIGINT NOT NULL, sink TEXT NOT NULL, sink_kind TEXT NOT NULL,
        part TEXT, source TEXT, contract TEXT, rows BIGINT, at {_T})""",
    "CREATE INDEX IF NOT EXISTS quarantines_run ON quarantines (run_id)",
    "CREATE INDEX IF NOT EXISTS quarantines_sink ON quarantines (sink, at)",
)

_VERSION_5: tuple[str, ...] = (  # kept outputs are checked against the hash of what was written; resume claims
    "ALTER TABLE checkpoints ADD COLUMN content_hash TEXT",
    f"""CREATE TABLE IF NOT EXISTS resumes (
        run_id TEXT PRIMARY KEY, by_run TEXT NOT NULL, host TEXT, pid BIGINT, pid_started_at {_T}, at {_T} NOT NULL)""",
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (_VERSION_1, _VERSION_2, _VERSION_3, _VERSION_4, _VERSION_5)
SCHEMA_VERSION = len(MIGRATIONS)
