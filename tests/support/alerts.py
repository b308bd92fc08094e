"""A scripted alert source for the sink tests: evidence, ``alert.raised`` and outbox rows, committed together.

This stands in for the watcher: it records alerts the way the watcher does (the alert entry
and its outbox rows in one transaction), so delivery is tested without detection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from mlwarden.monitor.alert import ALERT_RAISED, Alert, Severity, alert_id
from mlwarden.monitor.outbox import enqueue
from mlwarden.monitor.sinks.interface import AlertSink
from mlwarden.workspace import Workspace


def raise_alert(
    ws: Workspace,
    sinks: Sequence[AlertSink],
    *,
    rule: str = "access.denied_burst",
    severity: Severity = Severity.HIGH,
    principal: str = "tok_mallory",
    evidence: int = 3,
    with_index: bool = True,
    summary: str = "denials for one principal in a minute",
) -> Alert:
    """Record ``evidence`` denial entries, then the alert over them and its outbox rows, in one transaction."""
    with ws.log.transaction() as tx:
        indices = [
            tx.append(kind="access.denied", subject="model:bc", principal=principal, body={"reason": "scope"}).index
            for _ in range(evidence)
        ]
        alert = Alert(
            alert_id=alert_id(rule, indices[0], indices[-1], principal),
            rule=rule,
            severity=severity,
            summary=summary,
            first_index=indices[0],
            last_index=indices[-1],
            time="2026-11-26T21:00:00.000000Z",
            principal=principal,
            subject="model:bc",
            details={"count": evidence, "window_seconds": 60},
        )
        body = {k: v for k, v in alert.to_dict().items() if k != "entry_index"}
        receipt = tx.append(kind=ALERT_RAISED, subject=f"alert:{alert.alert_id}", principal="mlwarden", body=body)
        recorded = replace(alert, entry_index=receipt.index)
        enqueue(tx.conn, recorded if with_index else alert, sinks)
    return recorded
