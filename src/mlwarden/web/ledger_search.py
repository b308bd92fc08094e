"""Ledger search for the console: newest-first keyset pages over the audit index.

The filter is the audit query service's own (:class:`mlwarden.audit.AuditFilter`, parsed by
:func:`mlwarden.audit.parse_filter`: the same kinds, principal, subject prefix, decision id,
HTTP status and times, relative ones included) and every candidate row is checked against the
entry's own text with the audit service's :func:`mlwarden.audit.query.matches`: the lookup
columns only choose candidates, a column that lies can hide an entry, never show a wrong one.

The audit service reads oldest first; the console shows newest first, so the page is read here
by the same ``(column, idx)`` indexes backwards: each driving condition (principal, status,
decision, kind, or the few subjects a prefix covers) is one index-ordered stream below the
cursor, the streams are merged by index and the page stops at ``limit``. A time range becomes
an index range first through the audit service (entry times never decrease along the log).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlwarden.audit import AuditFilter, parse_filter, query_page
from mlwarden.audit.query import matches, newest_first, parse_row
from mlwarden.errors import InvalidInput
from mlwarden.workspace import Workspace

PAGE_SIZE = 50
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
    status: str = ""
    before: int | None = None
    limit: int = PAGE_SIZE

    def __post_init__(self) -> None:
        for name in ("kind", "subject", "principal", "decision_id", "since", "until", "status"):
            if len(getattr(self, name)) > MAX_FILTER:
                raise InvalidInput(f"filter {name} is longer than {MAX_FILTER} characters")
        if self.status and not (self.status.isascii() and self.status.isdigit() and len(self.status) == 3):
            raise InvalidInput("status must be an HTTP status (three digits, e.g. 403)")
        if self.before is not None and self.before < 0:
            raise InvalidInput("the page cursor must be zero or more")
        if not 1 <= self.limit <= 500:
            raise InvalidInput("a page holds 1 to 500 entries")

    def query_string(self, before: int) -> dict[str, str]:
        """The filter with the next page's cursor, as query parameters."""
        names = ("kind", "subject", "principal", "decision_id", "since", "until", "status")
        out = {k: getattr(self, k) for k in names}
        return {**{k: v for k, v in out.items() if v}, "before": str(before)}

    def audit_filter(self) -> AuditFilter:
        """The audit service's filter for this one (times parsed; a bad value is an input error)."""
        return parse_filter(
            kinds=[self.kind] if self.kind else None, principal=self.principal or None,
            subject=self.subject or None, decision=self.decision_id or None, since=self.since or None,
            until=self.until or None, status=int(self.status) if self.status else None, limit=self.limit,
        )  # fmt: skip


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


def _first_at_or_after(ws: Workspace, flt: AuditFilter, moment_of: str) -> int | None:
    """The first index at or after the filter's ``since``/``until`` time (the audit service's binary search)."""
    moment = flt.since if moment_of == "since" else flt.until
    page = query_page(ws, AuditFilter(since=moment, limit=1))
    return page.cursor - 1 if page.next_since_index is not None else None


def search_entries(ws: Workspace, f: LedgerFilter) -> LedgerPage:
    """One page of entries matching ``f``, newest first, from the cursor ``f.before`` down."""
    flt = f.audit_filter()
    low, before = 0, f.before
    if flt.since is not None:
        first = _first_at_or_after(ws, flt, "since")
        if first is None:
            return LedgerPage([], None, None)
        low = first
    if flt.until is not None:
        end = _first_at_or_after(ws, flt, "until")
        if end is not None:
            before = end if before is None else min(before, end)
    if before is not None and before <= low:
        return LedgerPage([], None, None)
    with ws.engine.connect() as conn:
        candidates = newest_first(conn, flt, low, before)
    rows: list[LedgerRow] = []
    for index, text in candidates:
        row = parse_row(index, text)
        if row is not None and matches(flt, row):
            rows.append(LedgerRow(row.index, row.kind, row.time, row.principal, row.subject, row.body))
    lowest = candidates[-1][0] if candidates else None
    full = len(candidates) == flt.limit and lowest is not None and lowest > low
    return LedgerPage(rows, lowest if full else None, lowest)
