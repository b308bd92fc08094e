"""What an alert sink is: a named destination that delivers one alert or raises :class:`SinkUnavailable`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from mlwarden.errors import MlwardenError
from mlwarden.monitor.alert import Alert, Severity

AlertFormat = Callable[[Alert], dict[str, Any]]
"""Renders an alert as a JSON object (``Alert.to_dict``, OCSF, ECS...)."""


class SinkUnavailable(MlwardenError):
    """A sink could not take an alert now (down, refused, timed out): the outbox keeps it and retries."""


class AlertSink(Protocol):
    """A destination for alerts. ``deliver`` returns once the destination has the alert, or raises."""

    @property
    def name(self) -> str:
        """The sink's name in ``policy.yaml`` (part of every idempotency key)."""
        ...

    @property
    def min_severity(self) -> Severity:
        """Alerts below this severity are not sent here."""
        ...

    def deliver(self, alert: Alert, idempotency_key: str) -> None:
        """Send ``alert``; raise :class:`SinkUnavailable` when it did not arrive (it will be retried)."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...
