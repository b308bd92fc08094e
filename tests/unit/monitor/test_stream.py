"""Reading the ledger: the entry text is the truth, not the columns; unreadable entries are findings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import text

from mlwarden.ledger.entry import PreparedEntry
from mlwarden.monitor.alerts_store import list_alerts
from mlwarden.monitor.stream import Header, count_decisions, read_entry, read_header
from mlwarden.workspace import Workspace
from tests.unit.monitor.conftest import MakeWatcher, drain


def rendered(kind: str, principal: str, body: Mapping[str, Any], index: int = 42) -> str:
    entry = PreparedEntry.build(kind=kind, subject="model:bc:1", principal=principal, body=dict(body))
    return entry.render(index, "2026-01-01T00:00:00.000000Z").decode()


def test_the_header_is_the_top_level_one_even_when_the_body_quotes_one() -> None:
    """A body that spells out another index, kind or principal cannot change what the header says."""
    body = {"note": ',"index":7,"kind":"access.allowed","principal":"x","subject":"y","time":"z"}',
            "nested": {"index": 3, "kind": "x", "principal": "p2", "subject": "s2", "time": "t2"}}  # fmt: skip
    raw = rendered("access.denied", "token:a", body)
    parsed = read_entry(42, raw)
    assert read_header(raw) == Header(42, "access.denied", "token:a", "model:bc:1", "2026-01-01T00:00:00.000000Z")
    assert (parsed.index, parsed.kind, parsed.principal, parsed.subject, parsed.time) == (
        42, "access.denied", "token:a", "model:bc:1", "2026-01-01T00:00:00.000000Z")  # fmt: skip


def test_the_header_refuses_text_that_is_not_plain_canonical() -> None:
    """Escapes, another key order, trailing bytes or a malformed index: no header, the entry is parsed in full."""
    assert read_header(rendered("access.denied", 'token:"quoted"', {})) is None
    assert read_header(rendered("access.denied", "token:\\back", {})) is None
    canonical = rendered("access.denied", "token:a", {})
    assert read_header(canonical + " ") is None
    assert read_header(canonical.replace('"index":42', '"index":042')) is None
    assert read_header('{"kind":"access.denied"}') is None
    assert read_header('{"body":{},"index":x1,"kind":"a"}') is None
    assert read_header(rendered("access.denied", "tökén", {})) == Header(
        42, "access.denied", "tökén", "model:bc:1", "2026-01-01T00:00:00.000000Z")  # fmt: skip


def test_decisions_are_counted_only_from_a_plain_list() -> None:
    """The count agrees with a full parse, or there is none (a comma, quote or bracket inside an id)."""
    for ids in ([], ["d1"], ["d1", "d2", "d3"]):
        raw = rendered("prediction", "token:a", {"decision_ids": ids, "model": "bc", "version": 1})
        assert count_decisions(raw) == len(read_entry(42, raw).body["decision_ids"])
    for odd in (["a,b"], ['a"b'], ["a]b"], ["a\\b"]):
        assert count_decisions(rendered("prediction", "token:a", {"decision_ids": odd})) is None
    assert count_decisions(rendered("prediction", "token:a", {"a_first": 1, "decision_ids": ["d1"]})) is None
    assert count_decisions(rendered("prediction", "token:a", {"decision_ids": [["d1", "d2"]]})) is None


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
