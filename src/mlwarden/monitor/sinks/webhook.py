"""Webhook sink: each alert as a signed JSON POST (see :mod:`mlwarden.monitor.webhook_signature`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import orjson

from mlwarden.monitor.alert import Alert, Severity
from mlwarden.monitor.sinks.interface import AlertFormat, SinkUnavailable
from mlwarden.monitor.webhook_signature import IDEMPOTENCY_HEADER, sign_webhook

USER_AGENT = "mlwarden-alerts/1"


@dataclass(slots=True)
class WebhookSink:
    """POSTs ``format(alert)`` to ``url``; any answer but 2xx (or no answer in time) is a failed attempt.

    The body is sent exactly as signed. A 2xx is success; 3xx is not followed (a redirect
    would carry the signed body somewhere the configuration did not name).
    """

    name: str
    url: str
    secret: bytes = field(repr=False)
    format: AlertFormat = Alert.to_dict
    min_severity: Severity = Severity.LOW
    timeout_seconds: float = 5.0
    clock: Callable[[], float] = time.time
    _client: httpx.Client | None = field(default=None, init=False, repr=False)

    def _http(self) -> httpx.Client:
        if self._client is None:
            timeout = httpx.Timeout(self.timeout_seconds, connect=min(self.timeout_seconds, 3.0))
            self._client = httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)
        return self._client

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
            response = self._http().post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise SinkUnavailable(f"webhook {self.name}: {type(exc).__name__}: {str(exc)[:200]}") from exc
        if not 200 <= response.status_code < 300:
            raise SinkUnavailable(f"webhook {self.name}: receiver answered HTTP {response.status_code}")

    def close(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            self._client.close()
            self._client = None
