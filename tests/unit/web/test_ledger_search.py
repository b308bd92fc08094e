"""The console's ledger search on SQLite and PostgreSQL: every filter, newest first, a lying column shows nothing."""

from __future__ import annotations

from sqlalchemy import update

from mlwarden.store.schema import ledger_entries
from mlwarden.web.ledger_search import LedgerFilter, LedgerPage, search_entries
from mlwarden.workspace import Workspace


def _fill(ws: Workspace) -> None:
    for i in range(30):
        decision = f"dec-{i}"
        ws.log.append(kind="prediction", subject=f"model:m{i % 3}:1", principal=f"token:p{i % 2}",
                      body={"decision_ids": [decision], "inputs": [[1.0]], "outputs": [{"label": 0}]},
                      refs=(decision,))  # fmt: skip
        if i % 5 == 0:
            ws.log.append(kind="request.rejected", subject="route:/v1/predict", principal=f"token:p{i % 2}",
                          body={"status": 429 if i % 10 else 403, "reason": "x", "method": "POST",
                                "path": "/v1/predict"})  # fmt: skip


def _all(ws: Workspace, **kw: str) -> list[int]:
    """Every matching index, page by page (three a page)."""
    seen: list[int] = []
    page = LedgerPage([], None, None)
    before: int | None = None
    for _ in range(100):
        page = search_entries(ws, LedgerFilter(limit=3, before=before, **kw))
        seen += [r.index for r in page.rows]
        if page.next_before is None:
            return seen
        before = page.next_before
    raise AssertionError("the pages never ended")


def _expected(ws: Workspace, keep: object) -> list[int]:
    entries = [ws.log.entry(i).parse() for i in range(ws.log.size())]
    return [e.index for e in reversed(entries) if keep(e)]  # type: ignore[operator]


def test_each_filter_finds_exactly_its_entries(workspace: Workspace) -> None:
    _fill(workspace)
    ws = workspace
    assert _all(ws, principal="token:p1") == _expected(ws, lambda e: e.principal == "token:p1")
    assert _all(ws, subject="model:m2") == _expected(ws, lambda e: e.subject.startswith("model:m2"))
    assert _all(ws, subject="model:m") == _expected(ws, lambda e: e.subject.startswith("model:m"))
    assert _all(ws, kind="request.rejected", principal="token:p0") == _expected(
        ws, lambda e: e.kind == "request.rejected" and e.principal == "token:p0"
    )
    assert _all(ws, status="403") == _expected(ws, lambda e: e.kind == "request.rejected" and e.body["status"] == 403)
    assert _all(ws, decision_id="dec-7") == _expected(ws, lambda e: "dec-7" in e.body.get("decision_ids", []))
    assert _all(ws, subject="model:zz") == []
    assert len(_all(ws)) == ws.log.size()


def test_a_lying_column_never_shows_a_wrong_entry(workspace: Workspace) -> None:
    """A row whose principal column was rewritten is not returned for that principal (the text decides)."""
    _fill(workspace)
    victim = _expected(workspace, lambda e: e.principal == "token:p0")[0]
    with workspace.engine.begin() as conn:
        conn.execute(update(ledger_entries).where(ledger_entries.c.idx == victim).values(principal="token:p1"))
    found = _all(workspace, principal="token:p1")
    assert victim not in found
    assert found == _expected(workspace, lambda e: e.principal == "token:p1")
