"""Webhook sink: each alert as a signed JSON POST (see :mod:`mlwarden.monitor.webhook_signature`).

Standard library HTTP (``http.client``): the gateway image carries no HTTP client package,
and one POST with timeouts over a kept-alive connection is all a sink needs.
"""

from __future__ import annotations

import contextlib
import http.client
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson

from mlwarden.monitor.alert import Alert, Severity
from mlwarden.monitor.sinks.interface import AlertFormat, SinkUnavailable
from mlwarden.monitor.webhook_signature import IDEMPOTENCY_HEADER, sign_webhook

USER_AGENT = "mlwarden-alerts/1"
MAX_ANSWER_BYTES = 64 << 10


@dataclass(slots=True)
class WebhookSink:
    """POSTs ``format(alert)`` to ``url``; any answer but 2xx (or no answer in time) is a failed attempt.

    The body is sent exactly as signed. A 2xx is success; 3xx is not followed (a redirect
    would carry the signed body somewhere the configuration did not name). No proxy from
    the environment is used.
    """

    name: str
    url: str
    secret: bytes = field(repr=False)
    format: AlertFormat = Alert.to_dict
    min_severity: Severity = Severity.LOW
    timeout_seconds: float = 5.0
    tls_context: ssl.SSLContext | None = field(default=None, repr=False)
    clock: Callable[[], float] = time.time
    _conn: http.client.HTTPConnection | None = field(default=None, init=False, repr=False)

    def _connection(self) -> tuple[http.client.HTTPConnection, str]:
        parts = urlsplit(self.url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if self._conn is None:
            host = parts.hostname or ""
            if parts.scheme == "https":
                context = self.tls_context or ssl.create_default_context()
                self._conn = http.client.HTTPSConnection(host, parts.port, timeout=self.timeout_seconds,
                                                         context=context)  # fmt: skip
            else:
                self._conn = http.client.HTTPConnection(host, parts.port, timeout=self.timeout_seconds)
        return self._conn, target

    def deliver(self, alert: Alert, idempotency_key: str) -> None:
        """POST the alert once; raise :class:`SinkUnavailable` unless the receiver answered 2xx."""
        body = orjson.dumps(self.format(alert), option=orjson.OPT_SORT_KEYS)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            IDEMPOTENCY_HEADER: idempotency_key,
            **sign_webhook(self.secret, body, int(self.clock())),
        }
        try:
            conn, target = self._connection()
            conn.request("POST", target, body=body, headers=headers)
            answer = conn.getresponse()
            answer.read(MAX_ANSWER_BYTES)
            status = answer.status
            if answer.will_close or not answer.isclosed():  # closed by the peer, or an answer too long to drain
                self.close()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise SinkUnavailable(f"webhook {self.name}: {type(exc).__name__}: {str(exc)[:200]}") from exc
        if not 200 <= status < 300:
            raise SinkUnavailable(f"webhook {self.name}: receiver answered HTTP {status}")

    def close(self) -> None:
        """Close the kept-alive connection, if any."""
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
            self._conn = None
