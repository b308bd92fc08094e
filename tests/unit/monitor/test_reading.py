"""The watcher's fast reading path: bulk rows, kinds read from the entry text, findings for gaps and forgeries."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import text

from mlwarden.monitor.alert import Alert, Severity
from mlwarden.monitor.alerts_store import list_alerts
from mlwarden.monitor.stream import UNREADABLE, ReadPlan, WatchedEntry, read_batch
from mlwarden.monitor.watcher import Watcher, read_rows
from mlwarden.workspace import Workspace
from tests.unit.monitor.conftest import MakeWatcher, drain


def _rows(ws: Workspace) -> list[tuple[int, str, str]]:
    with ws.engine.connect() as conn:
        return read_rows(conn, 0, ws.log.size())


def parse_rows(
    rows: list[tuple[int, str, str]], start: int, stop: int, wanted: Callable[[str], bool]
) -> list[WatchedEntry]:
    """The entries a chunk's rows give when nothing stays light."""
    return read_batch(rows, start, stop, ReadPlan(wanted)).entries


def test_read_rows_returns_every_entry_text_in_index_order(ws: Workspace) -> None:
    for i in range(7):
        ws.log.append(kind="access.denied", subject=f"model:m{i}", principal="token:a", body={"n": i})
    rows = _rows(ws)
    assert [(i, k) for i, k, _ in rows] == [(i, "access.denied") for i in range(7)]
    assert all(isinstance(t, str) and f'"index":{i},' in t for i, _, t in rows)
    with ws.engine.connect() as conn:
        assert [i for i, _, _ in read_rows(conn, 2, 5)] == [2, 3, 4]


def test_unwatched_kinds_are_skipped_but_the_text_decides_not_the_column(ws: Workspace) -> None:
    ws.log.append(kind="access.allowed", subject="model:m", principal="token:a", body={})
    ws.log.append(kind="access.denied", subject="model:m", principal="token:a", body={})
    with ws.engine.begin() as conn:  # an intruder relabels the denial's kind column: the text still says denied
        conn.execute(text("UPDATE ledger_entries SET kind = 'access.allowed' WHERE idx = 1"))
    got = parse_rows(_rows(ws), 0, 2, lambda kind: kind != "access.allowed")
    assert [(e.index, e.kind) for e in got] == [(1, "access.denied")]


def test_a_watched_kind_in_the_column_does_not_change_the_kind_rules_see(ws: Workspace) -> None:
    ws.log.append(kind="access.allowed", subject="model:m", principal="token:a", body={})
    with ws.engine.begin() as conn:
        conn.execute(text("UPDATE ledger_entries SET kind = 'access.denied' WHERE idx = 0"))
    got = parse_rows(_rows(ws), 0, 1, lambda kind: kind != "access.allowed")
    assert got == []  # the text says allowed (unwatched): no denial is invented from the column


def test_gaps_and_entries_that_lie_about_their_index_become_findings() -> None:
    honest = '{"body":{},"index":0,"kind":"access.denied","principal":"p","subject":"s","time":"2026-01-01T00:00:00Z"}'
    liar = honest.replace('"index":0', '"index":9')  # stored at 2, claims 9
    got = parse_rows([(0, "access.denied", honest), (2, "access.denied", liar)], 0, 4, lambda kind: True)
    assert [(e.index, e.kind) for e in got] == [(0, "access.denied"), (1, UNREADABLE), (2, UNREADABLE),
                                                 (3, UNREADABLE)]  # fmt: skip
    assert "missing" in got[1].body["problem"]
    assert "says it is entry 9" in got[2].body["problem"]


def test_one_tick_records_an_alert_found_twice_only_once(ws: Workspace, make_watcher: MakeWatcher) -> None:
    ws.log.append(kind="access.denied", subject="model:m", principal="token:a", body={})
    watcher: Watcher = make_watcher()
    drain(watcher)
    twice = Alert(alert_id="a" * 32, rule="custom.x", severity=Severity.LOW, summary="s", first_index=0,
                  last_index=0, time="2026-01-01T00:00:00Z")  # fmt: skip
    watcher._commit(watcher.position, watcher.position, [twice, twice])
    assert [a.alert.alert_id for a in list_alerts(ws)] == ["a" * 32]
    assert watcher.raised == {("custom.x", "low"): 1}


def test_found_counts_alerts_of_committed_ticks(ws: Workspace, make_watcher: MakeWatcher) -> None:
    for i in range(20):  # the default threshold of access.denied_burst
        ws.log.append(kind="access.denied", subject=f"model:m{i}", principal="token:probe", body={})
    watcher = make_watcher(batch=7)
    drain(watcher)
    assert watcher.found == {("access.denied_burst", "medium"): 1}
    assert watcher.raised == watcher.found
