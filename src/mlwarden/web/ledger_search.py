"""Ledger search for the console: keyset pages by index over today's columns (kind, subject).

The one function the console calls is :func:`search_entries`; it is shaped so that an audit
query service (indexed principal and time columns) can replace it without touching the pages.
Until then kind and subject prefix narrow the query in SQL; principal and time are matched
on the entry's own text, examining at most ``scan_budget`` rows per page (the page says how
far it looked). A decision id is looked up through its reference, one entry. The columns are
only an index: what is shown and matched comes from each entry's own text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import select

from mlwarden.errors import InvalidInput
from mlwarden.ledger.entry import MAX_SUBJECT
from mlwarden.store.schema import ledger_entries
from mlwarden.workspace import Workspace

PAGE_SIZE = 50
SCAN_BUDGET = 5_000
MAX_FILTER = 512


@dataclass(frozen=True, slots=True)
class LedgerFilter:
    """What to look for; every field optional. ``before``: the keyset cursor (entries with a smaller index)."""

    kind: str = ""
    subject: str = ""
    principal: str = ""
    decision_id: str = ""
    since: str = ""
    until: str = ""
    before: int | None = None
    limit: int = PAGE_SIZE

    def __post_init__(self) -> None:
        for name in ("kind", "subject", "principal", "decision_id", "since", "until"):
            if len(getattr(self, name)) > MAX_FILTER:
                raise InvalidInput(f"filter {name} is longer than {MAX_FILTER} characters")
        if self.before is not None and self.before < 0:
            raise InvalidInput("the page cursor must be zero or more")
        if not 1 <= self.limit <= 500:
            raise InvalidInput("a page holds 1 to 500 entries")

    def query_string(self, before: int) -> dict[str, str]:
        """The filter with the next page's cursor, as query parameters."""
        out = {k: getattr(self, k) for k in ("kind", "subject", "principal", "decision_id", "since", "until")}
        return {**{k: v for k, v in out.items() if v}, "before": str(before)}


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One entry as a list shows it (from its own text)."""

    index: int
    kind: str
    time: str
    principal: str
    subject: str
    body: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LedgerPage:
    """Entries newest first; ``next_before`` continues the search (None: nothing older is left)."""

    rows: list[LedgerRow]
    next_before: int | None
    examined_down_to: int | None


def _row(index: int, text: str) -> LedgerRow | None:
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or obj.get("index") != index or not isinstance(obj.get("body"), dict):
        return None
    return LedgerRow(index, str(obj.get("kind")), str(obj.get("time")), str(obj.get("principal")),
                     str(obj.get("subject")), obj["body"])  # fmt: skip


def _matches(row: LedgerRow, f: LedgerFilter) -> bool:
    return (
        (not f.kind or row.kind == f.kind)
        and (not f.subject or row.subject.startswith(f.subject))
        and (not f.principal or row.principal == f.principal)
        and (not f.since or row.time >= f.since)
        and (not f.until or row.time < f.until)
    )


def _by_decision(ws: Workspace, f: LedgerFilter) -> LedgerPage:
    index = ws.log.find_ref(f.decision_id)
    if index is None or (f.before is not None and index >= f.before):
        return LedgerPage([], None, None)
    row = _row(index, ws.log.entry(index).text)
    refs = row.body.get("decision_ids") if row is not None else None
    found = row is not None and isinstance(refs, list) and f.decision_id in refs and _matches(row, f)
    return LedgerPage([row] if found and row is not None else [], None, index)


def search_entries(ws: Workspace, f: LedgerFilter, *, scan_budget: int = SCAN_BUDGET) -> LedgerPage:
    """One page of entries matching ``f``, newest first, from the cursor ``f.before`` down."""
    if f.decision_id:
        return _by_decision(ws, f)
    t = ledger_entries.c
    query = select(t.idx, t.entry).order_by(t.idx.desc())
    if f.kind:
        query = query.where(t.kind == f.kind)
    if f.subject:
        escaped = f.subject[:MAX_SUBJECT].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(t.subject.like(escaped + "%", escape="\\"))
    cursor = f.before
    rows: list[LedgerRow] = []
    examined = 0
    lowest: int | None = None
    with ws.engine.connect() as conn:
        while len(rows) < f.limit and examined < scan_budget:
            chunk = min(scan_budget - examined, max(f.limit * 4, 200))
            bounded = query if cursor is None else query.where(t.idx < cursor)
            batch = conn.execute(bounded.limit(chunk)).all()
            for index, text in batch:
                examined += 1
                lowest = int(index)
                row = _row(int(index), str(text))
                if row is not None and _matches(row, f):
                    rows.append(row)
                    if len(rows) == f.limit:
                        break
            if len(batch) < chunk or lowest is None:
                return LedgerPage(rows, lowest if len(rows) == f.limit and lowest else None, lowest)
            cursor = lowest
    more = lowest is not None and lowest > 0
    return LedgerPage(rows, lowest if more else None, lowest)
