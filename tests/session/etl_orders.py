"""The workflow the crash-and-resume suite runs (copied to ``etl.py`` in the test's folder and run
with ``python -m bubbles run etl.py``): orders from a CSV export and from an HTTP API, merged by
key into DuckDB, published as a partitioned Parquet dataset and a split CSV set, the CSV files
delivered to a drop folder (manifest last), and a final announcement.

Crashes are asked for through the environment, so the code (and so every task's key) is the same
in the run that is killed and in the run that resumes it:

* ``KILL_AT`` names a point: a write step the data layer announces (``dir:swapped``,
  ``set:journaled``, ``deliver:manifest``, ...) or one of the workflow's own (``csv:batch``,
  ``api:page``, ``merge:committed``, ``task:announce``);
* ``KILL_WAIT`` lists the tasks whose record must be in the run store before the kill (a task's
  record is written up to a second after it ended): waiting for them makes what a resume can
  reuse exact.

The first time the point is reached, the whole process group (the run's process and, for the
processes executor, its workers) gets SIGKILL; with ``KILL_TARGET=main``, only the run's process
(as the OOM killer would pick it), its workers being left to notice.

Each task appends ``<run id> <task>`` to ``trace.log`` when it starts, so the test knows which
tasks really ran, whatever the run store says.
"""

import json
import os
import signal
import time

import pyarrow as pa
import pyarrow.compute as pc

import bubbles
from bubbles import Workflow
from bubbles.data.files._atomic import write_steps
from bubbles.data.http import ApiSource, PageNumber

HERE = os.path.dirname(os.path.abspath(__file__))
os.environ.setdefault("ETL_MAIN_PID", str(os.getpid()))  # (worker processes are started after this, with it)
DB = os.path.join(HERE, "warehouse.duckdb")
SCHEMA = pa.schema([("order_id", pa.int64()), ("customer", pa.string()), ("region", pa.string()),
                    ("amount", pa.float64()), ("status", pa.string())])


def _trace(task):
    ctx = bubbles.current_task()
    with open(os.path.join(HERE, "trace.log"), "a", encoding="utf-8") as f:
        f.write(f"{ctx.run_id} {task}\n")


def _wait_recorded(run_id, tasks):
    """Until the run store holds each of ``tasks`` as done (succeeded, or reused by a resumed run), its output kept."""
    from bubbles.store import open_store

    deadline = time.monotonic() + 30
    while True:
        with open_store() as store:
            states = {t["task"]: t["state"] for t in store.tasks(run_id)}
            kept = {c["task"] for c in store.checkpoints(run_id) if c["format"] != "unkept"}
        if all(states.get(t) in ("succeeded", "reused") and t in kept for t in tasks):
            return
        if time.monotonic() > deadline:
            print(f"KILL POINT NOT REACHED: tasks {tasks} not recorded: {states}, kept {sorted(kept)}", flush=True)
            os._exit(97)
        time.sleep(0.02)


def _point(name, path=""):
    """Die here if the environment asks for it (see the module docstring)."""
    if os.environ.get("KILL_AT") != name:
        return
    waited = [t for t in os.environ.get("KILL_WAIT", "").split(",") if t]
    _wait_recorded(bubbles.current_task().run_id, waited)
    with open(os.path.join(HERE, "killed.log"), "a", encoding="utf-8") as f:
        f.write(f"{name} {path}\n")
    if os.environ.get("KILL_TARGET") == "main":
        os.kill(int(os.environ["ETL_MAIN_PID"]), signal.SIGKILL)
    else:
        os.killpg(os.getpgid(0), signal.SIGKILL)


def extract_csv():
    _trace("extract_csv")
    batches = []
    for batch in bubbles.read_csv(os.path.join(HERE, "orders_export.csv"), schema=SCHEMA, batch_size=64):
        batches.append(batch)
        _point("csv:batch")
    return pa.Table.from_batches(batches, schema=SCHEMA)


def extract_api():
    _trace("extract_api")
    api = ApiSource(os.environ["ORDERS_API"], retry=2, breaker=None)
    batches = []
    for batch in api.read_batches("/orders", paginate=PageNumber(size=50, size_param="per_page"),
                                  records_path="data", schema=SCHEMA):
        batches.append(batch)
        _point("api:page")
    return pa.Table.from_batches(batches, schema=SCHEMA)


def merge_orders(from_csv, from_api):
    """The API is newer than the export: where both have an order, the API's row wins."""
    _trace("merge_orders")
    newer = set(from_api.column("order_id").to_pylist())
    older = from_csv.filter(pc.invert(pc.is_in(from_csv.column("order_id"), pa.array(sorted(newer)))))
    conn = bubbles.connect(f"duckdb:///{DB}")
    try:
        bubbles.write_table(conn, "orders", pa.concat_tables([older, from_api]), mode="merge", key="order_id")
        _point("merge:committed")
        return bubbles.read_sql(conn, "SELECT * FROM orders ORDER BY order_id")
    finally:
        conn.close()


def write_lake(orders):
    _trace("write_lake")
    with write_steps(_point):
        return bubbles.write_parquet(orders, os.path.join(HERE, "lake", "orders"), partition_by=["region"])


def write_extracts(orders):
    _trace("write_extracts")
    with write_steps(_point):
        return bubbles.write_csv(orders, os.path.join(HERE, "extracts", "orders_{key}.csv"), split_by="region")


def deliver_extracts(files):
    _trace("deliver_extracts")
    with write_steps(_point):
        receipt = bubbles.deliver(files, to=os.path.join(HERE, "drop"))
    return {"batch": receipt.batch, "files": receipt.files, "rows": receipt.manifest["rows"]}


def announce(delivered):
    """Tell the receiver a batch is ready: one note per batch (written whole, so a rerun overwrites it)."""
    _trace("announce")
    _point("task:announce")
    folder = os.path.join(HERE, "announced")
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{delivered['batch']}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(delivered, f)
    os.replace(tmp, os.path.join(folder, f"{delivered['batch']}.json"))
    return delivered["batch"]


wf = Workflow("orders_etl")
csv_orders = wf.add_task(extract_csv)
api_orders = wf.add_task(extract_api)
merged = wf.add_task(merge_orders, requires=[csv_orders, api_orders])
lake = wf.add_task(write_lake, requires=[merged])
extracts = wf.add_task(write_extracts, requires=[merged], after=[lake])
delivered = wf.add_task(deliver_extracts, requires=[extracts])
wf.add_task(announce, requires=[delivered])
