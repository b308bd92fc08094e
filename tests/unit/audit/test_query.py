"""Audit queries: each filter against a naive reference, keyset pages, untrusted columns, and follow."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from mlwarden.audit.filters import AuditFilter
from mlwarden.audit.query import AuditRow, follow, query_entries, query_page
from mlwarden.ledger.entry import PreparedEntry
from mlwarden.workspace import Workspace
from tests.unit.audit.conftest import DECISION, START, Recorded


def _everything(ws: Workspace) -> list[dict[str, Any]]:
    return [json.loads(data) for _i, data, _h in ws.log.iter_rows()]


def _naive(entries: list[dict[str, Any]], flt: AuditFilter) -> list[int]:
    """The reference: the filter's meaning, written out plainly over every parsed entry."""
    found = []
    for e in entries:
        body = e["body"]
        moment = datetime.fromisoformat(e["time"].replace("Z", "+00:00"))
        checks = [
            e["index"] >= flt.since_index,
            not flt.kinds or e["kind"] in flt.kinds,
            flt.principal is None or e["principal"] == flt.principal,
            flt.subject_prefix is None or e["subject"][: len(flt.subject_prefix)] == flt.subject_prefix,
            flt.model is None or e["subject"] == "model:" + flt.model or e["subject"].startswith(f"model:{flt.model}:"),
            flt.since is None or moment >= flt.since,
            flt.until is None or moment < flt.until,
            flt.status is None
            or (e["kind"] == "request.rejected" and body.get("status") == flt.status)
            or (e["kind"] == "request.rejected_summary" and str(flt.status) in body.get("statuses", {})),
            flt.decision is None
            or flt.decision in body.get("decision_ids", [])
            or (e["kind"] == "feedback" and body.get("decision_id") == flt.decision),
        ]
        if all(checks):
            found.append(e["index"])
    return found[: flt.limit]


FILTERS = [
    AuditFilter(),
    AuditFilter(kinds=("prediction",)),
    AuditFilter(kinds=("access.denied", "request.rejected")),
    AuditFilter(principal="token:mallory"),
    AuditFilter(principal="token:nobody"),
    AuditFilter(subject_prefix="model:bc"),
    AuditFilter(subject_prefix="model:a_"),  # '_' is no wildcard
    AuditFilter(subject_prefix="model:bc:1"),
    AuditFilter(model="bc"),
    AuditFilter(model="bc:2"),
    AuditFilter(decision=DECISION),
    AuditFilter(decision="d-0008"),
    AuditFilter(decision="d-0009"),
    AuditFilter(status=429),
    AuditFilter(status=413),
    AuditFilter(since=START + timedelta(hours=5)),
    AuditFilter(until=START + timedelta(hours=3)),
    AuditFilter(since=START + timedelta(hours=2), until=START + timedelta(hours=4), kinds=("prediction",)),
    AuditFilter(since_index=50, principal="token:bob", model="bc"),
    AuditFilter(kinds=("feedback",), principal="token:alice", decision=DECISION),
    AuditFilter(limit=7, kinds=("prediction",)),
]


@pytest.mark.parametrize("flt", FILTERS, ids=range(len(FILTERS)))
def test_each_filter_agrees_with_the_naive_reference(recorded: Recorded, flt: AuditFilter) -> None:
    """The indexed query returns exactly what a scan of every entry returns, in index order."""
    got = [row.index for row in query_entries(recorded.ws.engine, flt)]
    assert got == _naive(_everything(recorded.ws), flt)


def test_the_filters_actually_select(recorded: Recorded) -> None:
    """The reference is not trivially empty or everything: each filter keeps some entries and drops others."""
    everything = _everything(recorded.ws)
    for flt in FILTERS[1:4] + FILTERS[5:7] + FILTERS[8:17]:
        kept = _naive(everything, flt.with_limit(10_000))
        assert 0 < len(kept) < len(everything), flt


def test_keyset_pages_cover_the_result_once(recorded: Recorded) -> None:
    """Following next_since_index page by page yields every match once, and the last page says there is no more."""
    flt = AuditFilter(kinds=("prediction", "feedback"), limit=5)
    seen: list[int] = []
    pages = 0
    while True:
        page = query_page(recorded.ws.engine, flt)
        seen += [row.index for row in page.rows]
        pages += 1
        if page.next_since_index is None:
            break
        flt = AuditFilter(kinds=flt.kinds, limit=5, since_index=page.next_since_index)
    assert seen == _naive(_everything(recorded.ws), AuditFilter(kinds=("prediction", "feedback"), limit=10_000))
    assert pages >= len(seen) // 5


def test_rows_carry_the_entry_fields(recorded: Recorded) -> None:
    """A row is the entry's own index, kind, time, principal, subject and body (a workspace works as the source)."""
    row = query_entries(recorded.ws, AuditFilter(decision="d-0008", kinds=("prediction",)))[0]
    stored = json.loads(recorded.ws.log.entry(row.index).text)
    assert row.to_json() == stored


def test_a_lying_column_never_puts_a_wrong_entry_in_the_result(recorded: Recorded) -> None:
    """A database writer re-labels rows (principal, kind, time, status, decision): the query checks the text."""
    ws = recorded.ws
    alice = [r.index for r in query_entries(ws.engine, AuditFilter(principal="token:alice"))]
    with ws.engine.begin() as conn:
        conn.execute(text("UPDATE ledger_entries SET principal = 'token:alice' WHERE principal = 'token:bob'"))
        conn.execute(text("UPDATE ledger_entries SET kind = 'prediction', status = 429, decision = :d, "
                          "entry_time = '2000-01-01T00:00:00.000000Z'"), {"d": DECISION})  # fmt: skip
    assert [r.index for r in query_entries(ws.engine, AuditFilter(principal="token:alice"))] == alice
    for flt in (AuditFilter(kinds=("prediction",)), AuditFilter(status=429), AuditFilter(decision=DECISION)):
        assert [r.index for r in query_entries(ws.engine, flt)] == _naive(_everything(ws), flt)


def test_follow_yields_old_then_new_entries_in_order(recorded: Recorded, clock: list[datetime]) -> None:
    """follow reads what is there, then, at each wait, what was committed meanwhile; nothing twice or skipped."""
    ws = recorded.ws
    flt = AuditFilter(principal="token:carol", limit=2)
    waits: list[float] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        if len(waits) <= 3:  # commit more while the follower waits: 3 for carol, 1 for someone else
            ws.log.append(kind="external.note", subject="s", body={"w": len(waits)}, principal="token:carol")
            ws.log.append(kind="external.note", subject="s", body={"w": len(waits)}, principal="token:dave")
            if len(waits) == 1:
                ws.log.append(kind="external.note", subject="s", body={"w": 1.5}, principal="token:carol")
            return False
        return True

    ws.log.append(kind="external.note", subject="s", body={"w": 0}, principal="token:carol")
    got = [(row.principal, row.body["w"]) for row in follow(ws.engine, flt, wait, poll_s=0.25)]
    assert got == [("token:carol", w) for w in (0, 1, 1.5, 2, 3)]
    assert waits == [0.25] * 4


def test_results_never_hold_sealed_payloads(recorded: Recorded) -> None:
    """Bodies are the entries' own (commitments); nothing from the payload table is joined in."""
    rows: list[AuditRow] = query_entries(recorded.ws.engine, AuditFilter(kinds=("prediction",)))
    assert rows
    assert all(set(row.body) <= {"model", "decision_ids", "inputs"} for row in rows)


def test_a_prefix_over_many_subjects_and_a_missing_model(recorded: Recorded) -> None:
    """Past 64 distinct subjects the plan scans in index order; a model with no entries matches nothing."""
    ws = recorded.ws
    ws.log.append_many(
        [
            PreparedEntry.build(kind="external.n", subject=f"model:bulk{i:03d}:1", principal="p", body={})
            for i in range(80)
        ]
    )
    filters = [AuditFilter(subject_prefix="model:bulk"), AuditFilter(subject_prefix="model:bulk07"),
               AuditFilter(model="ghost"), AuditFilter(model="bulk003"), AuditFilter(subject_prefix="zzz")]  # fmt: skip
    for flt in filters:
        got = [row.index for row in query_entries(ws.engine, flt)]
        assert got == _naive(_everything(ws), flt), flt
    assert len(query_entries(ws.engine, AuditFilter(subject_prefix="model:bulk", limit=1000))) == 80


def test_entry_times_never_go_backwards(workspace: Workspace, clock: list[datetime]) -> None:
    """A clock stepping back a little is clamped to the previous entry's time; a big jump is not followed."""
    ws = workspace
    for step in (0, -2, 1, -60):  # seconds from START: the clock goes back 2 s, then far back
        clock.append(START + timedelta(seconds=step))
        ws.log.append(kind="external.tick", subject="s", body={"step": step}, principal="p")
    times = [json.loads(data)["time"] for _i, data, _h in ws.log.iter_rows()]
    start = START.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert times[-4:] == [start, start, (START + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                          (START - timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")]  # fmt: skip


def test_time_bounds_beyond_the_log(recorded: Recorded) -> None:
    """since after the last entry finds nothing; until after it bounds nothing."""
    last = max(recorded.times.values())
    assert query_entries(recorded.ws.engine, AuditFilter(since=last + timedelta(seconds=1))) == []
    everything = query_entries(recorded.ws.engine, AuditFilter(until=last + timedelta(days=1), limit=10_000))
    assert len(everything) == recorded.ws.log.size()
