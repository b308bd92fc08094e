"""Alerts are what the ledger backs: forged or altered cache rows are not listed; acks are recorded entries."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, insert, update

from mlwarden.errors import InvalidInput, NotFound
from mlwarden.monitor.alert import ALERT_ACKNOWLEDGED, Severity, alert_id
from mlwarden.monitor.alerts_store import acknowledge, list_alerts
from mlwarden.store.schema import alerts
from mlwarden.workspace import Workspace
from tests.unit.monitor.conftest import MakeWatcher, drain


def one_alert(ws: Workspace, make_watcher: MakeWatcher) -> str:
    ws.log.append(kind="token.created", subject="token:b", principal="alice", body={"scopes": ["admin"]})
    drain(make_watcher())
    (listed,) = list_alerts(ws)
    return listed.alert.alert_id


def test_a_forged_row_is_not_listed(ws: Workspace, make_watcher: MakeWatcher) -> None:
    real = one_alert(ws, make_watcher)
    forged = alert_id("ledger.integrity", 0, 0, "forged")
    with ws.engine.begin() as conn:
        conn.execute(insert(alerts).values(
            alert_id=forged, rule="ledger.integrity", severity=Severity.CRITICAL.value, principal="x", subject="y",
            first_index=0, last_index=0, summary="forged", time="2026-01-01T00:00:00.000000Z", entry_index=0,
        ))  # fmt: skip
    assert [a.alert.alert_id for a in list_alerts(ws)] == [real]
    with pytest.raises(NotFound):
        acknowledge(ws, forged, principal="bob", reason="trying")


def test_a_row_pointed_at_another_alerts_entry_or_edited_is_not_listed(
    ws: Workspace, make_watcher: MakeWatcher
) -> None:
    real = one_alert(ws, make_watcher)
    with ws.engine.begin() as conn:
        conn.execute(update(alerts).values(summary="nothing to see", severity="low"))
    assert list_alerts(ws)[0].alert.summary != "nothing to see"  # listed from its entry, not the edited row
    assert list_alerts(ws)[0].alert.alert_id == real


def test_a_deleted_row_is_still_listed_from_its_entry(ws: Workspace, make_watcher: MakeWatcher) -> None:
    real = one_alert(ws, make_watcher)
    with ws.engine.begin() as conn:
        conn.execute(delete(alerts))
    assert [a.alert.alert_id for a in list_alerts(ws)] == [real]


def test_ack_is_an_entry_and_only_once(ws: Workspace, make_watcher: MakeWatcher) -> None:
    real = one_alert(ws, make_watcher)
    acked = acknowledge(ws, real, principal="bob", reason="rotated the token")
    assert acked.ack is not None
    entry = ws.log.entry(acked.ack.entry_index).parse()
    assert (entry.kind, entry.principal, entry.body["reason"]) == (ALERT_ACKNOWLEDGED, "bob", "rotated the token")
    assert list_alerts(ws, open_only=True) == []
    with pytest.raises(InvalidInput, match="already acknowledged"):
        acknowledge(ws, real, principal="bob", reason="again")


def test_an_ack_written_into_the_row_without_an_entry_does_not_count(ws: Workspace, make_watcher: MakeWatcher) -> None:
    real = one_alert(ws, make_watcher)
    with ws.engine.begin() as conn:
        conn.execute(update(alerts).values(acknowledged_by="mallory", ack_reason="hush", ack_index=0))
    assert [a.alert.alert_id for a in list_alerts(ws, open_only=True)] == [real]


def test_ack_needs_a_reason(ws: Workspace, make_watcher: MakeWatcher) -> None:
    real = one_alert(ws, make_watcher)
    with pytest.raises(InvalidInput, match="reason"):
        acknowledge(ws, real, principal="bob", reason="  ")
