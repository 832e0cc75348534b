"""Secret scan: run a workflow full of faults that involve secrets, then look for them everywhere.

The workflow talks to a local HTTP server that answers 401 and echoes what it was sent (the
bearer token, the Basic-auth header, the API key in the query string), and has tasks that
resolve secrets themselves and put them in exception messages, exception causes and log
records — on the threads, processes and serial executors. Then every place a run's text
reaches is scanned for every secret **in every form it may take**, computed here
independently of bubbles' own masking (as it is, URL-encoded both ways, JSON-escaped, base64
of the value and of the ``user:password`` pair):

* every file in the bubbles home, byte by byte: the run store (and its write-ahead log), the
  kept task outputs (checkpoints: ``bubbles run`` persists them), ``lineage.jsonl``;
* ``bubbles run`` stdout/stderr, in text and in ``--log-format json`` mode;
* ``bubbles show last``, ``show last --json``, ``--logs``, ``--lineage``, ``bubbles runs``, ``bubbles cache ls``;
* the HTML report (``bubbles report last``);
* in Python: the ``RunFailed`` message, every task's error and traceback, and the pickled errors.

Usage::

    python benchmarks/secret_scan.py [--executors threads,processes,serial] [--keep DIR]

Prints occurrences per place and exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, quote_plus

SECRETS = {
    "SCAN_TOKEN": 'tok-Zq+9/aB=c"d\\e-7731-long-enough-to-be-cut-by-any-preview-of-a-response-body-0123456789',
    "SCAN_KEY": "KeyZq+9/x=ab&c d-4410",
    "SCAN_PW": "pw:Zq+9/é-ǅ-2291",
    "SCAN_INNER": "inner-Zq+9/s3cr3t-5562",
    "SCAN_SIDE": "side-Zq+9/é-s3cr3t-8841",
}
USER = "etl"


def forms(value: str) -> set[str]:
    """Every form of ``value`` a leak could take (computed without bubbles)."""
    raw = value.encode()
    out = {value, quote(value, safe=""), quote(value), quote_plus(value), json.dumps(value)[1:-1], repr(value)[1:-1]}
    out.add(json.dumps(value, ensure_ascii=False)[1:-1])
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        out.add(encoded.decode())
    out.add(base64.b64encode(f"{USER}:{value}".encode()).decode())
    return {f for f in out if len(f) >= 6}


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        sent = {"auth": self.headers.get("Authorization"), "path": self.path}
        body = json.dumps({"error": "unauthorized", "you_sent": sent}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


ETL = '''
import json, logging
import bubbles
from bubbles import BasicAuth, BearerToken, ApiKey, Workflow, read_api
from bubbles._secrets import resolve

URL = {url!r}
log = logging.getLogger("etl")


def bearer():
    return read_api(URL + "/bearer", auth=BearerToken("${{SCAN_TOKEN}}"), retry=None)


def api_key():
    return read_api(URL + "/key", auth=ApiKey("${{SCAN_KEY}}", query="key"), retry=None)


def basic():
    return read_api(URL + "/basic", auth=BasicAuth("{user}", "${{SCAN_PW}}"), retry=None)


def resolves_and_raises():
    token = resolve("${{SCAN_INNER}}")
    log.warning("connecting with %s (json %s)", token, json.dumps({{"t": token}}))
    try:
        raise ConnectionError(f"server refused {{token}}")
    except ConnectionError as exc:
        raise RuntimeError(f"login failed for {{json.dumps(token)}}") from exc


def everywhere():
    import concurrent.futures, threading, warnings
    key = resolve("${{SCAN_SIDE}}")
    bubbles.log_metric(f"calls_{{key}}", 1)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # a thread the task started: no task context there
        pool.submit(log.warning, "page 2 with key=%s", key).result()
    warnings.warn(f"deprecated: /v1?key={{key}}")
    thread = threading.Thread(target=lambda: (_ for _ in ()).throw(RuntimeError(f"watchdog: {{key}}")))
    thread.start(); thread.join()
    error = ValueError(f"refused {{key}}")
    error.add_note(f"note {{key}}")
    raise ExceptionGroup("pages", [error])


def _items():
    yield 1
    raise RuntimeError("listing failed at " + resolve("${{SCAN_SIDE}}"))


def items():
    return _items()


class Session:
    def __init__(self, token):
        self.token = token


def holds_secrets():  # outputs a run keeps for resume: a dict, an object, a table that name a secret
    token = resolve("${{SCAN_INNER}}")
    return {{"headers": {{"Authorization": "Bearer " + token}}, "session": Session(token)}}


def header_value():
    return "Bearer " + resolve("${{SCAN_INNER}}")


def clean_table():
    import pyarrow as pa
    return pa.table({{"id": [1, 2, 3]}})


wf = Workflow("secret-scan")
for fn in (bearer, api_key, basic, resolves_and_raises, everywhere, holds_secrets, header_value, clean_table):
    wf.add_task(fn)
wf.add_task(lambda value, table: table.num_rows, requires=["header_value", "clean_table"], name="uses_them")
wf.map(lambda x: x, wf.add_task(items, name="listing"), name="each")  # the runner lists the items: its own error text
'''


def _run(cmd: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    return done.stdout + "\n" + done.stderr


def scan(executors: list[str], workdir: Path) -> dict[str, int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    script = workdir / "etl.py"
    script.write_text(textwrap.dedent(ETL.format(url=url, user=USER)))
    home = workdir / "home"
    env = dict(os.environ, BUBBLES_HOME=str(home), BUBBLES_PROGRESS="0", **SECRETS)
    bubbles = [sys.executable, "-m", "bubbles"]
    texts: dict[str, str] = {}
    for ex in executors:
        run = [*bubbles, "run", str(script), "-e", ex, "--keep-going", "--log-format"]
        texts[f"bubbles run -e {ex} (text)"] = _run([*run, "text"], env, workdir)
        texts[f"bubbles run -e {ex} (json)"] = _run([*run, "json"], env, workdir)
        texts[f"bubbles show last ({ex})"] = _run([*bubbles, "show", "last"], env, workdir)
        texts[f"bubbles show last --json ({ex})"] = _run([*bubbles, "show", "last", "--json"], env, workdir)
        texts[f"bubbles show last --logs ({ex})"] = _run([*bubbles, "show", "last", "--logs"], env, workdir)
        texts[f"bubbles show last --lineage ({ex})"] = _run([*bubbles, "show", "last", "--lineage"], env, workdir)
        report = workdir / f"report-{ex}.html"
        _run([*bubbles, "report", "last", "-o", str(report)], env, workdir)
        texts[f"report ({ex})"] = report.read_text(encoding="utf-8", errors="replace") if report.exists() else ""
    texts["bubbles runs"] = _run([*bubbles, "runs"], env, workdir)
    texts["bubbles cache ls"] = _run([*bubbles, "cache", "ls"], env, workdir)
    texts["in Python"] = _run([sys.executable, "-c", _IN_PYTHON.format(script=str(script), executors=executors)], env, workdir)
    server.shutdown()
    server.server_close()
    for path in sorted(p for p in home.rglob("*") if p.is_file()):  # the store, kept outputs, lineage events
        place = "store file" if ".db" in path.name else "home file"
        texts[f"{place} {path.relative_to(home)}"] = path.read_bytes().decode("latin-1")
    found: dict[str, int] = {}
    for place, text in texts.items():
        n = sum(text.count(f) for value in SECRETS.values() for f in forms(value))
        found[place] = n
    if not any(texts[p] for p in texts if p.startswith("store file")):
        raise SystemExit("secret_scan: no run history was written; nothing was scanned")
    if not any(p.endswith(".arrow") for p in texts):
        raise SystemExit("secret_scan: no task output was kept (persist); the checkpoints were not scanned")
    return found


_IN_PYTHON = """
import pickle, runpy, sys
import bubbles
ns = runpy.run_path({script!r})
for ex in {executors!r}:
    try:
        ns["wf"].run(executor=ex, fail_fast=False)
    except bubbles.RunFailed as exc:
        print(str(exc))
        for t in exc.result.tasks.values():
            print(repr(t.error), t.error, t.traceback)
            print(pickle.dumps(t.error))
        print(pickle.dumps(exc))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executors", default="threads,processes,serial")
    parser.add_argument("--keep", default=None, help="keep the run's files in this directory")
    args = parser.parse_args()
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="bubbles-secret-scan-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        found = scan(args.executors.split(","), workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    width = max(map(len, found))
    for place, n in found.items():
        print(f"{place:<{width}}  {n}")
    total = sum(found.values())
    print(f"{'total occurrences':<{width}}  {total}")
    sys.exit(1 if total else 0)


if __name__ == "__main__":
    main()
