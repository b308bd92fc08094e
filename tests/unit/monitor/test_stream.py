"""Reading the ledger: the entry text is the truth, not the columns; unreadable entries are findings."""

from __future__ import annotations

from sqlalchemy import text

from mlwarden.ledger.entry import PreparedEntry
from mlwarden.monitor.alerts_store import list_alerts
from mlwarden.monitor.stream import peek_kind, read_entry
from mlwarden.workspace import Workspace
from tests.unit.monitor.conftest import MakeWatcher, drain


def test_peek_reads_the_top_level_kind_even_when_the_body_quotes_one() -> None:
    body = {"note": ',"index":7,"kind":"access.allowed"', "nested": {"index": 3, "kind": "x"}}
    raw = PreparedEntry.build(kind="access.denied", subject="s", principal="p", body=body).render(
        42, "2026-01-01T00:00:00.000000Z"
    )
    assert peek_kind(raw.decode()) == (42, "access.denied")
    assert read_entry(42, raw).kind == "access.denied"


def test_peek_refuses_text_that_is_not_canonical() -> None:
    assert peek_kind('{"kind":"access.denied"}') is None
    assert peek_kind('{"body":{},"index":x1,"kind":"a"}') is None


def test_a_kind_column_rewritten_does_not_hide_denials(ws: Workspace, make_watcher: MakeWatcher) -> None:
    for i in range(20):
        ws.log.append(kind="access.denied", subject=f"model:m{i}", principal="token:probe", body={})
    with ws.engine.begin() as conn:
        conn.execute(text("UPDATE ledger_entries SET kind = 'access.allowed'"))
    drain(make_watcher())
    assert [a.alert.rule for a in list_alerts(ws)] == ["access.denied_burst"]


def test_a_rewritten_entry_text_is_an_integrity_alert(ws: Workspace, make_watcher: MakeWatcher) -> None:
    ws.log.append(kind="access.allowed", subject="model:m", principal="p", body={})
    ws.log.append(kind="access.allowed", subject="model:m", principal="p", body={})
    with ws.engine.begin() as conn:
        conn.execute(text("UPDATE ledger_entries SET entry = 'not json' WHERE idx = 1"))
        conn.execute(text("DELETE FROM ledger_entries WHERE idx = 0"))
    drain(make_watcher())
    found = sorted((a.alert.rule, a.alert.subject) for a in list_alerts(ws))
    assert found == [("ledger.integrity", "ledger:0"), ("ledger.integrity", "ledger:1")]
