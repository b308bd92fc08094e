"""A plain-HTTP liveness listener on a local port, for health checks that cannot present a client certificate.

With mTLS on, the gateway's own port refuses every connection without a certificate, so a
container or orchestrator probe cannot reach ``/healthz`` there. ``mlwarden serve
--health-port N`` also answers ``GET /healthz`` on ``127.0.0.1:N``, without TLS: ``200`` while the
gateway's port accepts connections, ``503`` when it does not. It answers nothing else (404),
reads no request body and is never bound to another address.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HEALTH_HOST = "127.0.0.1"

__all__ = ["HEALTH_HOST", "HealthListener", "port_accepts"]


def port_accepts(host: str, port: int, timeout: float = 1.0) -> Callable[[], bool]:
    """A probe: does ``host:port`` accept a TCP connection? (0.0.0.0 and :: are probed on loopback)."""
    target = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104 - mapping, not binding

    def probe() -> bool:
        try:
            with socket.create_connection((target, port), timeout=timeout):
                return True
        except OSError:
            return False

    return probe


def _handler(probe: Callable[[], bool]) -> type[BaseHTTPRequestHandler]:
    class Health(BaseHTTPRequestHandler):
        server_version = "mlwarden-health"
        sys_version = ""

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/healthz":
                self._reply(404, {"status": "not found"})
            elif probe():
                self._reply(200, {"status": "ok"})
            else:
                self._reply(503, {"status": "gateway not accepting connections"})

        def _reply(self, status: int, body: dict[str, str]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return  # probes every few seconds are not worth a log line

    return Health


class HealthListener:
    """``GET /healthz`` on ``127.0.0.1:port`` in a daemon thread; ``close()`` stops it."""

    def __init__(self, port: int, probe: Callable[[], bool]) -> None:
        self._server = ThreadingHTTPServer((HEALTH_HOST, port), _handler(probe))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="mlwarden-health", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthListener:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
