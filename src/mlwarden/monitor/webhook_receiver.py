"""A small local webhook receiver: verifies each delivery's signature and writes what it got as JSON lines.

For the demo and for tests (``mlwarden sinks receive --port N --out FILE``). A delivery
whose signature does not verify is answered 401 and not written; a second delivery with
an ``Idempotency-Key`` already written is answered 200 and not written again (so every
alert is in the file once, however often it was retried). Binds to loopback by default.
"""

from __future__ import annotations

import json
import os
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mlwarden.errors import InvalidInput
from mlwarden.monitor.webhook_signature import IDEMPOTENCY_HEADER, SignatureInvalid, verify_webhook

MAX_BODY_BYTES = 1 << 20


def _seen_keys(out: Path) -> set[str]:
    """Idempotency keys already in ``out`` (a restarted receiver still drops duplicates)."""
    keys: set[str] = set()
    try:
        with out.open(encoding="utf-8") as lines:
            for line in lines:
                try:
                    keys.add(str(json.loads(line)["idempotency_key"]))
                except (ValueError, KeyError, TypeError):
                    continue
    except FileNotFoundError:
        pass
    return keys


class WebhookReceiver(ThreadingHTTPServer):
    """An HTTP server that stores verified alert deliveries in ``out``."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], *, secret: bytes, out: Path) -> None:
        self.secret = secret
        self.out = out
        self.lock = threading.Lock()
        self.keys = _seen_keys(out)
        self.stored = 0
        self.duplicates = 0
        self.rejected = 0
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        """Where to send deliveries."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/"

    def store(self, key: str, alert: Any) -> bool:
        """Write one delivery unless its key was already written; return whether it was written."""
        with self.lock:
            if key in self.keys:
                self.duplicates += 1
                return False
            line = json.dumps({"idempotency_key": key, "received_at": time.time(), "alert": alert}) + "\n"
            fd = os.open(self.out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
            self.keys.add(key)
            self.stored += 1
            return True


class _Handler(BaseHTTPRequestHandler):
    server: WebhookReceiver
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds a connection may sit idle or trickle a request (no thread held forever)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the output file is the record."""

    def _answer(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._answer(HTTPStatus.LENGTH_REQUIRED, {"error": "content-length is required"})
            return
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "body too large"})
            return
        body = self.rfile.read(length)
        try:
            verify_webhook(self.server.secret, dict(self.headers.items()), body)
            key = self.headers.get(IDEMPOTENCY_HEADER)
            if not key:
                raise InvalidInput("no Idempotency-Key header")
            alert = json.loads(body)
        except (SignatureInvalid, InvalidInput, ValueError) as exc:
            with self.server.lock:
                self.server.rejected += 1
            self._answer(HTTPStatus.UNAUTHORIZED, {"error": str(exc)})
            return
        stored = self.server.store(key, alert)
        self._answer(HTTPStatus.OK, {"status": "stored" if stored else "duplicate"})


def start_receiver(host: str, port: int, *, secret: bytes, out: Path) -> tuple[WebhookReceiver, threading.Thread]:
    """Bind and serve on a thread (``receiver.shutdown()`` stops it)."""
    receiver = WebhookReceiver((host, port), secret=secret, out=out)
    thread = threading.Thread(target=receiver.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    return receiver, thread
