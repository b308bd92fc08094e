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

from sqlalchemy import ColumnElement, Connection, and_, func, or_, select, true

from mlwarden.audit import AuditFilter, parse_filter, query_page
from mlwarden.audit.query import SUMMARY_KIND, SUMMARY_PRINCIPAL, matches, parse_row
from mlwarden.errors import InvalidInput
from mlwarden.ledger.columns import STATUS_KIND
from mlwarden.store.schema import ledger_entries, ledger_refs
from mlwarden.workspace import Workspace

PAGE_SIZE = 50
MAX_FILTER = 512
MAX_SUBJECTS = 64
"""A subject prefix covering more distinct subjects than this is matched along the primary key, within a budget."""
SCAN_BUDGET = 5_000
_E = ledger_entries.c


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


class _Reader:
    """One newest-first page: driving streams on indexed columns, the rest riding along unindexed."""

    def __init__(self, conn: Connection, flt: AuditFilter) -> None:
        self.conn, self.flt = conn, flt
        self.postgres = conn.dialect.name == "postgresql"

    def _subject_col(self, plain: bool) -> ColumnElement[str]:
        if self.postgres:
            return _E.subject.collate("C")
        return _E.subject.op("||")("") if plain else _E.subject

    def _plain(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        if self.postgres:
            return column
        return column + 0 if column.key == "status" else column.op("||")("")

    def _prefix(self, plain: bool) -> ColumnElement[bool]:
        prefix = self.flt.subject_prefix or ""
        col = self._subject_col(plain)
        last = ord(prefix[-1])
        if last >= 0x10FFFF or 0xD7FF <= last <= 0xDFFF:
            return col >= prefix  # the text check keeps only the prefixed rows
        return and_(col >= prefix, col < prefix[:-1] + chr(last + 1))

    def _rest(self, skip: str) -> list[ColumnElement[bool]]:
        flt, p = self.flt, self._plain
        where: list[ColumnElement[bool]] = []
        if flt.kinds and skip != "kinds":
            where.append(p(_E.kind).in_(flt.kinds))
        if flt.principal is not None and skip != "principal":
            where.append(p(_E.principal) == flt.principal)
        if flt.subject_prefix is not None and skip != "subject":
            where.append(self._prefix(plain=True))
        if flt.status is not None and skip != "status":
            where.append(or_(p(_E.status) == flt.status, p(_E.kind) == SUMMARY_KIND))
        return where

    def _subjects(self) -> list[str] | None:
        """The distinct subjects the prefix covers, if few (one index seek each)."""
        prefix = self.flt.subject_prefix or ""
        col = self._subject_col(plain=False)
        found: list[str] = []
        current, inclusive = prefix, True
        while len(found) <= MAX_SUBJECTS:
            bound = col >= current if inclusive else col > current
            row = self.conn.execute(select(func.min(col)).where(bound)).first()
            if row is None or row[0] is None or not str(row[0]).startswith(prefix):
                return found
            current, inclusive = str(row[0]), False
            found.append(current)
        return None

    def streams(self) -> tuple[str, list[ColumnElement[bool]]]:
        flt = self.flt
        if flt.decision is not None:
            refs = select(ledger_refs.c.idx).where(ledger_refs.c.ref == flt.decision).scalar_subquery()
            return "decision", [_E.idx == refs, _E.decision == flt.decision,
                                _E.subject == f"decision:{flt.decision}"]  # fmt: skip
        if flt.status is not None:
            streams: list[ColumnElement[bool]] = []
            if not flt.kinds or STATUS_KIND in flt.kinds:
                by = [_E.principal == flt.principal] if flt.principal is not None else []
                streams.append(and_(_E.status == flt.status, *by))
            if (not flt.kinds or SUMMARY_KIND in flt.kinds) and flt.principal in (None, SUMMARY_PRINCIPAL):
                streams.append(_E.kind == SUMMARY_KIND)
            return "status", streams
        if flt.principal is not None:
            return "principal", [_E.principal == flt.principal]
        if flt.kinds:
            return "kinds", [_E.kind == kind for kind in flt.kinds]
        if flt.subject_prefix is not None:
            subjects = self._subjects()
            if subjects is not None:
                col = self._subject_col(plain=False)
                return "subject", [col == s for s in subjects]
        return "", [true()]

    def page(self, low: int, before: int | None) -> list[tuple[int, str]]:
        """Up to ``limit`` candidate rows below ``before`` (and at or above ``low``), newest first."""
        skip, streams = self.streams()
        rest = self._rest(skip)
        bounds = [_E.idx >= low, *([_E.idx < before] if before is not None else [])]
        limit = self.flt.limit if skip else min(self.flt.limit, SCAN_BUDGET)
        candidates: list[tuple[int, str]] = []
        for driving in streams:
            query = select(_E.idx, _E.entry).where(*bounds, driving, *rest).order_by(_E.idx.desc()).limit(limit)
            candidates += [(int(i), str(t)) for i, t in self.conn.execute(query).all()]
        candidates.sort(key=lambda c: -c[0])
        return candidates[:limit]


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
        candidates = _Reader(conn, flt).page(low, before)
    rows: list[LedgerRow] = []
    for index, text in candidates:
        row = parse_row(index, text)
        if row is not None and matches(flt, row):
            rows.append(LedgerRow(row.index, row.kind, row.time, row.principal, row.subject, row.body))
    lowest = candidates[-1][0] if candidates else None
    full = len(candidates) == flt.limit and lowest is not None and lowest > low
    return LedgerPage(rows, lowest if full else None, lowest)
