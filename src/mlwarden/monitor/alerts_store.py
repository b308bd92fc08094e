"""Listing and acknowledging alerts: the ``alerts`` table is a cache, the ledger entries are the truth.

Every row listed is checked against the ``alert.raised`` entry it names (proven against the
signed head); a row no entry backs (written straight into the database) is left out and
logged, and an alert whose row was deleted is still listed from its entry. An
acknowledgement counts only when its ``alert.acknowledged`` entry backs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select, update

from mlwarden.errors import IntegrityError, InvalidInput, NotFound
from mlwarden.ledger.entry import Entry, utc_now
from mlwarden.monitor.alert import ALERT_ACKNOWLEDGED, ALERT_RAISED, Alert
from mlwarden.store.schema import alerts
from mlwarden.workspace import Workspace

log = structlog.get_logger("mlwarden.alerts")

MAX_REASON = 1000
MAX_LISTED = 10_000


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """Who acknowledged an alert, when, why, and the entry that records it."""

    by: str
    at: str
    reason: str
    entry_index: int

    def to_dict(self) -> dict[str, Any]:
        return {"by": self.by, "at": self.at, "reason": self.reason, "entry_index": self.entry_index}


@dataclass(frozen=True, slots=True)
class ListedAlert:
    """An alert backed by its ledger entry, and its acknowledgement if one is recorded."""

    alert: Alert
    ack: Acknowledgement | None

    def to_dict(self) -> dict[str, Any]:
        """``Alert.to_dict()`` plus ``acknowledged`` and ``ack``."""
        return {**self.alert.to_dict(), "acknowledged": self.ack is not None,
                "ack": None if self.ack is None else self.ack.to_dict()}  # fmt: skip


def _proven(ws: Workspace, index: int, kind: str) -> Entry | None:
    try:
        entry, _proof = ws.log.verified_entry(int(index))
    except (IntegrityError, NotFound):
        return None
    return entry if entry.kind == kind else None


def _alert_of(entry: Entry) -> Alert | None:
    try:
        return replace_index(Alert.from_dict(entry.body), entry.index)
    except (KeyError, ValueError, TypeError):
        return None


def replace_index(alert: Alert, index: int) -> Alert:
    from dataclasses import replace

    return replace(alert, entry_index=index)


def _backed(ws: Workspace, row: Any) -> Alert | None:
    """The alert of a cache row if its ``alert.raised`` entry says exactly that; else None."""
    entry = _proven(ws, row.entry_index, ALERT_RAISED)
    alert = _alert_of(entry) if entry is not None else None
    if alert is None or entry is None or entry.subject != f"alert:{row.alert_id}":
        return None
    same = (alert.alert_id, alert.rule, alert.severity.value, alert.principal, alert.subject, alert.first_index,
            alert.last_index, alert.summary, alert.time) == (row.alert_id, row.rule, row.severity, row.principal,
            row.subject, row.first_index, row.last_index, row.summary, row.time)  # fmt: skip
    return alert if same else None


def _ack(ws: Workspace, row: Any) -> Acknowledgement | None:
    if row.ack_index is None:
        return None
    entry = _proven(ws, row.ack_index, ALERT_ACKNOWLEDGED)
    if entry is None or entry.body.get("alert_id") != row.alert_id:
        return None
    return Acknowledgement(entry.principal, entry.time, str(entry.body.get("reason", "")), entry.index)


def list_alerts(ws: Workspace, *, open_only: bool = False) -> list[ListedAlert]:
    """Every alert the ledger backs, newest first (``open_only``: not acknowledged)."""
    with ws.engine.connect() as conn:
        rows = conn.execute(select(alerts).order_by(alerts.c.entry_index.desc()).limit(MAX_LISTED)).all()
    listed: list[ListedAlert] = []
    seen: set[str] = set()
    for row in rows:
        alert = _backed(ws, row)
        if alert is None:
            log.warning("alert_row_not_backed", alert_id=str(row.alert_id)[:64], entry_index=row.entry_index)
            continue
        seen.add(alert.alert_id)
        listed.append(ListedAlert(alert, _ack(ws, row)))
    listed_subjects = {f"alert:{i}" for i in seen}
    for stored in ws.log.find(ALERT_RAISED, "alert:", limit=MAX_LISTED):  # rows deleted from the cache
        if _subject_of(stored.text) in listed_subjects:
            continue  # already listed (and proven) from its row
        entry = _proven(ws, stored.index, ALERT_RAISED)
        alert = _alert_of(entry) if entry is not None else None
        if alert is not None and alert.alert_id not in seen:
            log.warning("alert_row_missing", alert_id=alert.alert_id, entry_index=stored.index)
            seen.add(alert.alert_id)
            listed.append(ListedAlert(alert, _ack_from_ledger(ws, alert.alert_id)))
    listed.sort(key=lambda a: -(a.alert.entry_index or 0))
    return [a for a in listed if not (open_only and a.ack is not None)]


def _subject_of(text: str) -> str | None:
    try:
        return Entry.parse(text).subject
    except InvalidInput:
        return None


def _ack_from_ledger(ws: Workspace, alert_id: str) -> Acknowledgement | None:
    for stored in ws.log.find(ALERT_ACKNOWLEDGED, f"alert:{alert_id}", limit=1):
        entry = _proven(ws, stored.index, ALERT_ACKNOWLEDGED)
        if entry is not None and entry.body.get("alert_id") == alert_id:
            return Acknowledgement(entry.principal, entry.time, str(entry.body.get("reason", "")), entry.index)
    return None


def acknowledge(ws: Workspace, alert_id: str, *, principal: str, reason: str) -> ListedAlert:
    """Record an ``alert.acknowledged`` entry for a backed, open alert; the acknowledged alert."""
    reason = reason.strip() if isinstance(reason, str) else ""
    if not reason:
        raise InvalidInput("an acknowledgement needs a reason")
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"the reason is {len(reason)} characters; the limit is {MAX_REASON}")
    found = next((a for a in list_alerts(ws) if a.alert.alert_id == alert_id), None)
    if found is None:
        raise NotFound(f"alert {alert_id[:64]} is not in the ledger")
    if found.ack is not None:
        raise InvalidInput(f"alert {alert_id} was already acknowledged by {found.ack.by} at {found.ack.at}")
    with ws.log.transaction() as tx:
        receipt = tx.append(
            kind=ALERT_ACKNOWLEDGED, subject=f"alert:{alert_id}",
            body={"alert_id": alert_id, "rule": found.alert.rule, "reason": reason}, principal=principal,
        )  # fmt: skip
        tx.conn.execute(
            update(alerts).where(alerts.c.alert_id == alert_id).values(
                acknowledged_by=principal, acknowledged_at=utc_now(), ack_reason=reason, ack_index=receipt.index,
            )
        )  # fmt: skip
    entry = _proven(ws, receipt.index, ALERT_ACKNOWLEDGED)
    at = entry.time if entry is not None else ""
    return ListedAlert(found.alert, Acknowledgement(principal, at, reason, receipt.index))
