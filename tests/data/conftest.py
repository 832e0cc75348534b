"""Fixtures of the data-plane tests: a real S3 (moto server) and a real HTTP receiver, on 127.0.0.1."""

from __future__ import annotations

import email.parser
import email.policy
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server in a thread; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A fresh bucket; returns ``{"bucket": name, "storage_options": {...}}`` for s3fs."""
    import secrets

    import s3fs

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    options = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": s3_endpoint},
               "skip_instance_cache": True}
    bucket = "b-" + secrets.token_hex(4)
    fs = s3fs.S3FileSystem(**options)
    fs.mkdir(bucket)
    return {"bucket": bucket, "storage_options": options, "fs": fs}


class Receiver:
    """What the HTTP receiver got: uploads by batch and name, the headers, and failures to inject."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.files: dict[tuple[str, str], bytes] = {}
        self.requests: list[dict[str, Any]] = []
        self.fail_next = 0  # answer this many requests with 503 first
        self.token: str | None = None
        self.url = ""

    def reset(self) -> None:
        with self.lock:
            self.files.clear()
            self.requests.clear()
            self.fail_next = 0
            self.token = None


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def _reply(self, status: int, body: bytes = b"ok") -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _accept(self) -> bytes | None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                receiver.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers)})
                if receiver.fail_next:
                    receiver.fail_next -= 1
                    self._reply(503, b"try later")
                    return None
                if receiver.token and self.headers.get("Authorization") != f"Bearer {receiver.token}":
                    self._reply(401, b"bad token")
                    return None
            return body

        def do_GET(self) -> None:
            with receiver.lock:
                receiver.requests.append({"method": "GET", "path": self.path, "headers": dict(self.headers)})
                _, batch, name = self.path.rsplit("/", 2)
                body = receiver.files.get((batch, name))
            if body is None:
                self._reply(404, b"not found")
            else:
                self._reply(200, body)

        def do_PUT(self) -> None:
            body = self._accept()
            if body is None:
                return
            _, batch, name = self.path.rsplit("/", 2)
            with receiver.lock:
                receiver.files[(batch, name)] = body
            self._reply(201)

        def do_POST(self) -> None:
            body = self._accept()
            if body is None:
                return
            head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
            batch = self.headers["X-Bubbles-Batch"]
            for part in message.iter_parts():
                if part.get_filename():
                    with receiver.lock:  # keyed by batch and name: a repeated upload replaces, never duplicates
                        receiver.files[(batch, part.get_filename())] = part.get_payload(decode=True)
            self._reply(201)

    return Handler


@pytest.fixture(scope="session")
def _http_server() -> Iterator[Receiver]:
    receiver = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/drops"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def http_receiver(_http_server: Receiver) -> Receiver:
    _http_server.reset()
    return _http_server
