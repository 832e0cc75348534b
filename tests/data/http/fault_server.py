"""A paginated JSON API on 127.0.0.1 that injects faults on request, for the HTTP reader's tests.

Every endpoint serves the same records (``id``, ``name``, ``updated_at``, a nested ``owner``)
through one pagination style. A test queues faults for a given (endpoint, page) with
:meth:`FaultServer.inject`; each request to that page takes the next fault from its queue, and
when the queue is empty the page is served normally. Every request is logged with its arrival
time, so tests can check what the client really sent (retries, rate, exactly-once).

Faults: ``429`` (with ``Retry-After``), ``500``, ``503``, ``slow`` (answer after ``slow_seconds``),
``drop`` (close the connection without answering), ``truncate`` (send half the body, then close),
``cut_json`` (a complete response whose JSON is cut short), ``html`` (a 200 text/html page).
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Hit:
    at: float  # time.monotonic() when the request arrived
    path: str
    query: dict[str, str]
    page: int
    outcome: str  # "ok" or the fault served


def make_records(n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "name": f"item-{i}",
            "updated_at": f"2024-01-{1 + i // 100:02d}T{(i % 24):02d}:00:00+00:00",
            "owner": {"login": f"user{i % 7}", "geo": {"lat": i / 10}},
        }
        for i in range(n)
    ]


class FaultServer:
    """The server's state; handlers read it under ``lock``."""

    def __init__(self, records: int = 237) -> None:
        self.lock = threading.Lock()
        self.records = make_records(records)
        self.hits: list[Hit] = []
        self.faults: dict[tuple[str, int], deque[str]] = defaultdict(deque)
        self.latency = 0.0
        self.slow_seconds = 1.5
        self.retry_after = "1"
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> FaultServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def reset(self, records: int = 237) -> None:
        with self.lock:
            self.records = make_records(records)
            self.hits.clear()
            self.faults.clear()
            self.latency = 0.0
            self.slow_seconds = 1.5
            self.retry_after = "1"

    def inject(self, endpoint: str, page: int, *faults: str) -> None:
        """Serve ``faults`` (in order) to the next requests for ``page`` (1-based) of ``endpoint``."""
        with self.lock:
            self.faults[(endpoint, page)].extend(faults)

    def take_fault(self, endpoint: str, page: int) -> str | None:
        with self.lock:
            queue = self.faults.get((endpoint, page))
            return queue.popleft() if queue else None

    def log(self, hit: Hit) -> None:
        with self.lock:
            self.hits.append(hit)

    def hits_for(self, path: str) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.path == path]


def _make_handler(server: FaultServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go in two writes: don't wait for delayed ACKs

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def handle(self) -> None:
            try:
                super().handle()
            except (ConnectionError, TimeoutError):  # the client gave up (timeouts, test teardown)
                pass

        def do_GET(self) -> None:
            arrived = time.monotonic()
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            self.query = query
            route = parts.path.strip("/").split("/")[0]
            handler = getattr(self, f"route_{route}", None)
            if route.startswith("_") and handler is not None:  # control endpoints: not logged, no faults
                handler(query)
                return
            if handler is None:
                server.log(Hit(arrived, route, query, 0, "404"))
                self.send_json({"error": "not found"}, status=404)
                return
            page = self.page_of(route, query)
            fault = server.take_fault(route, page)
            server.log(Hit(arrived, route, query, page, fault or "ok"))
            if server.latency:
                time.sleep(server.latency)
            if fault is not None and self.serve_fault(fault, route, query):
                return
            handler(query)

        # -- faults -----------------------------------------------------------------------------
        def serve_fault(self, fault: str, route: str, query: dict[str, str]) -> bool:
            if fault == "429":
                self.send_json({"error": "slow down"}, status=429, headers={"Retry-After": server.retry_after})
            elif fault in ("500", "503"):
                self.send_json({"error": "boom"}, status=int(fault))
            elif fault == "slow":
                time.sleep(server.slow_seconds)
                return False  # then answer normally, long after the client's timeout
            elif fault == "drop":
                self.close_connection = True
            elif fault == "truncate":
                body = json.dumps({"data": server.records[:50]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
            elif fault == "cut_json":
                self.send_raw(json.dumps({"data": server.records[:50]}).encode()[:300], "application/json")
            elif fault == "html":
                self.send_raw(b"<html><body>Maintenance</body></html>", "text/html; charset=utf-8")
            else:
                raise ValueError(f"unknown fault {fault!r}")
            return True

        # -- helpers ----------------------------------------------------------------------------
        def send_raw(self, body: bytes, content_type: str, status: int = 200, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def send_json(self, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
            self.send_raw(json.dumps(body).encode(), "application/json", status, headers)

        def page_of(self, route: str, query: dict[str, str]) -> int:
            if "page" in query:
                return int(query["page"])
            if "offset" in query:
                return int(query["offset"]) // int(query.get("limit", 25)) + 1
            if "cursor" in query and query["cursor"].removeprefix("c").isdigit():
                return int(query["cursor"].removeprefix("c")) // 25 + 1
            return 1 if "cursor" not in query else 0

        def slice(self, query: dict[str, str], page: int, size: int) -> list[dict[str, Any]]:
            records = server.records
            if "updated_since" in query:
                records = [r for r in records if r["updated_at"] >= query["updated_since"]]
            return records[(page - 1) * size : page * size]

        # -- endpoints --------------------------------------------------------------------------
        def route_pages(self, query: dict[str, str]) -> None:
            page, size = int(query.get("page", 1)), int(query.get("per_page", 25))
            total = len(server.records)
            self.send_json({"data": self.slice(query, page, size), "meta": {"total": total, "pages": -(-total // size)}})

        def route_offset(self, query: dict[str, str]) -> None:
            offset, limit = int(query.get("offset", 0)), int(query.get("limit", 25))
            self.send_json({"items": server.records[offset : offset + limit], "total": len(server.records)})

        def route_cursor(self, query: dict[str, str]) -> None:
            start = int(query.get("cursor", "c0").removeprefix("c"))
            data = server.records[start : start + 25]
            more = start + 25 < len(server.records)
            self.send_json({"data": data, "meta": {"next": f"c{start + 25}" if more else None}})

        def route_next(self, query: dict[str, str]) -> None:
            page = int(query.get("page", 1))
            data = self.slice(query, page, 25)
            more = page * 25 < len(server.records)
            self.send_json({"results": data, "next": f"/next?page={page + 1}" if more else None})

        def route_link(self, query: dict[str, str]) -> None:
            page = int(query.get("page", 1))
            more = page * 25 < len(server.records)
            headers = {"Link": f'<{server.url}/link?page={page + 1}>; rel="next"'} if more else {}
            self.send_json(self.slice(query, page, 25), headers=headers)

        def route_loop(self, query: dict[str, str]) -> None:
            self.send_json({"data": server.records[:5], "meta": {"next": "same-token"}})

        def route_stuck(self, query: dict[str, str]) -> None:  # ignores ?page=
            self.send_json({"data": server.records[:25]})

        def route_scalars(self, query: dict[str, str]) -> None:
            self.send_json({"data": [1, 2, 3]})

        def route_notjson(self, query: dict[str, str]) -> None:
            self.send_raw(b"OK: 42 records", "application/json")

        def route_html(self, query: dict[str, str]) -> None:
            self.send_raw(b"<html><body>Please log in</body></html>", "text/html")

        def route_shape(self, query: dict[str, str]) -> None:
            page = int(query.get("page", 1))
            data: Any = server.records[(page - 1) * 25 : page * 25] if page < 3 else {"id": 1}
            self.send_json({"data": data})

        def route_schema(self, query: dict[str, str]) -> None:
            page = int(query.get("page", 1))
            rows: list[dict[str, Any]] = [{"id": page * 10 + i, "amount": i} for i in range(10)]
            if page == 2:  # a new column appears, and amounts become fractional
                rows = [{**r, "amount": r["amount"] + 0.5, "note": "late"} for r in rows]
            if page == 3 and query.get("bad") == "1":
                rows = [{**r, "amount": f"{r['amount']} EUR"} for r in rows]
            self.send_json({"data": rows if page <= 3 else []})

        def route__hits(self, query: dict[str, str]) -> None:  # for a server in another process
            with server.lock:
                self.send_json([[h.at, h.path, h.page, h.outcome] for h in server.hits])

        def route__reset(self, query: dict[str, str]) -> None:
            with server.lock:
                server.hits.clear()
                server.latency = float(query.get("latency", server.latency))
            self.send_json({})

        def route_auth(self, query: dict[str, str]) -> None:
            self.send_json(
                {
                    "data": [
                        {
                            "authorization": self.headers.get("Authorization"),
                            "key": query.get("api_key"),
                            "x_api_key": self.headers.get("X-API-Key"),
                        }
                    ]
                }
            )

    return Handler


def main() -> None:
    """Serve in this process until killed: ``python -m tests.data.http.fault_server --latency 0.02``.

    Prints the base URL on the first line of stdout. Used by the benchmarks, so that the server
    does not share the client's interpreter lock.
    """
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=237)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    server = FaultServer(records=args.records)
    server.latency = args.latency
    print(server.url, flush=True)
    server._httpd.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    main()
