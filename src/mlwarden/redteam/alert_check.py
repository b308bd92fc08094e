"""Did the gateway's watch rules notice an attack? Alerts raised while it ran, read through ``GET /v1/alerts``.

The check needs an ``audit:read`` token. Without one, or when the gateway has no alerts API
(404) or refuses the token, the answer is "not checked": a suite never guesses that a
defence worked. Alerts are told apart by ``alert_id`` (the shared
:class:`mlwarden.monitor.alert.Alert` shape): only ids absent from the snapshot taken before
the attack count, so an alert left over from an earlier run never passes for this one.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from mlwarden.redteam.target import TargetUnreachable

if TYPE_CHECKING:
    from mlwarden.redteam.target import Target

EXTRACTION_RULE = "inference.extraction"
"""The watch rule that flags extraction-like query patterns."""


class AlertCheck(StrEnum):
    """Whether a rule raised an alert during the attack."""

    FIRED = "fired"
    NOT_FIRED = "not fired"
    NOT_CHECKED = "not checked"


class AlertWatch:
    """Snapshots of the alerts a gateway has raised, read through the run's target with an ``audit:read`` token."""

    def __init__(self, target: Target, token: str | None) -> None:
        self.target = target
        self._token = token

    def snapshot(self) -> dict[str, str] | None:
        """Alert id -> rule of every alert now listed, or None when they cannot be read."""
        if not self._token:
            return None
        try:
            reply = self.target.request("GET", "/v1/alerts", token=self._token)
        except TargetUnreachable:
            return None
        doc = reply.json()
        if reply.status != 200 or not isinstance(doc, dict) or not isinstance(doc.get("alerts"), list):
            return None  # 404: no alerts API here; 401/403: the token may not read them
        return {_identity(a): str(a.get("rule")) for a in doc["alerts"] if isinstance(a, dict)}

    def fired(
        self, rule: str, before: dict[str, str] | None, *, wait_seconds: float = 5.0, poll_seconds: float = 0.5
    ) -> AlertCheck:
        """Whether an alert of ``rule`` absent from ``before`` appears within ``wait_seconds`` (rules run behind)."""
        if before is None:
            return AlertCheck.NOT_CHECKED
        deadline = time.monotonic() + wait_seconds
        while True:
            now = self.snapshot()
            if now is None:
                return AlertCheck.NOT_CHECKED
            if any(r == rule and key not in before for key, r in now.items()):
                return AlertCheck.FIRED
            if time.monotonic() + poll_seconds > deadline:
                return AlertCheck.NOT_FIRED
            time.sleep(poll_seconds)  # the watcher reads the ledger stream on its own schedule


def _identity(alert: dict[str, Any]) -> str:
    found = alert.get("alert_id")
    return str(found) if found else repr(sorted(alert.items()))
