"""Audit queries over the ledger: filtered, keyset-paginated by index, and followed like ``tail -f``.

The lookup columns only choose candidate rows; the database is not trusted, so every row is
parsed and checked against the filter from its own entry text before it is returned. A
column that lies can hide an entry from a query (``ledger verify`` names such a row), never
make a query return an entry that does not match.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Engine, and_, or_, select
from sqlalchemy.exc import SQLAlchemyError

from mlwarden.audit.filters import AuditFilter, entry_time
from mlwarden.errors import LedgerUnavailable
from mlwarden.ledger.columns import STATUS_KIND, derived
from mlwarden.ledger.kinds import recorded_refs
from mlwarden.store.engine import describe_db_error
from mlwarden.store.schema import ledger_entries, ledger_refs

SUMMARY_KIND = "request.rejected_summary"
"""Unauthenticated rejections summed per window: ``--status`` also finds those that counted it."""
_E = ledger_entries.c


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One entry as an audit query returns it (its body carries commitments, never sealed payloads)."""

    index: int
    kind: str
    time: str
    principal: str
    subject: str
    body: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """``{"index", "kind", "time", "principal", "subject", "body"}``."""
        return {
            "index": self.index,
            "kind": self.kind,
            "time": self.time,
            "principal": self.principal,
            "subject": self.subject,
            "body": self.body,
        }


@dataclass(frozen=True, slots=True)
class AuditPage:
    """Matching rows and where to continue.

    ``cursor`` is the first index not yet examined; ``next_since_index`` is the cursor when
    more entries may match (the page was full), else None.
    """

    rows: list[AuditRow]
    cursor: int
    next_since_index: int | None


def _prefix_range(column: ColumnElement[str], prefix: str, postgres: bool) -> ColumnElement[bool]:
    """``column`` starts with ``prefix`` as a byte range the index answers (C collation on PostgreSQL)."""
    col = column.collate("C") if postgres else column
    last = ord(prefix[-1])
    if last >= 0x10FFFF or 0xD7FF <= last <= 0xDFFF:
        return col >= prefix  # no simple successor: the text check below keeps only the prefixed ones
    return and_(col >= prefix, col < prefix[:-1] + chr(last + 1))


def _conditions(flt: AuditFilter, postgres: bool) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [_E.idx >= flt.since_index]
    if flt.kinds:
        where.append(_E.kind.in_(flt.kinds) if len(flt.kinds) > 1 else _E.kind == flt.kinds[0])
    if flt.principal is not None:
        where.append(_E.principal == flt.principal)
    if flt.subject_prefix is not None:
        where.append(_prefix_range(_E.subject, flt.subject_prefix, postgres))
    if flt.model is not None:
        where.append(
            or_(_E.subject == f"model:{flt.model}", _prefix_range(_E.subject, f"model:{flt.model}:", postgres))
        )
    if flt.since is not None:
        where.append(_E.entry_time >= entry_time(flt.since))
    if flt.until is not None:
        where.append(_E.entry_time < entry_time(flt.until))
    if flt.status is not None:
        where.append(or_(_E.status == flt.status, _E.kind == SUMMARY_KIND))
    if flt.decision is not None:
        refs = select(ledger_refs.c.idx).where(ledger_refs.c.ref == flt.decision).scalar_subquery()
        where.append(or_(_E.idx == refs, _E.decision == flt.decision, _E.subject == f"decision:{flt.decision}"))
    return where


def matches(flt: AuditFilter, row: AuditRow) -> bool:
    """Whether the entry itself (not its columns) satisfies every part of ``flt``."""
    if row.index < flt.since_index or (flt.kinds and row.kind not in flt.kinds):
        return False
    if flt.principal is not None and row.principal != flt.principal:
        return False
    if flt.subject_prefix is not None and not row.subject.startswith(flt.subject_prefix):
        return False
    if flt.model is not None and not (
        row.subject == f"model:{flt.model}" or row.subject.startswith(f"model:{flt.model}:")
    ):
        return False
    if flt.since is not None and row.time < entry_time(flt.since):
        return False
    if flt.until is not None and row.time >= entry_time(flt.until):
        return False
    if flt.status is not None and not _has_status(row, flt.status):
        return False
    return flt.decision is None or _about_decision(row, flt.decision)


def _has_status(row: AuditRow, status: int) -> bool:
    if row.kind == STATUS_KIND:
        return derived(row.kind, row.body)[1] == status
    if row.kind == SUMMARY_KIND:
        counts = row.body.get("statuses")
        return isinstance(counts, dict) and str(status) in counts
    return False


def _about_decision(row: AuditRow, decision: str) -> bool:
    return (
        decision in recorded_refs(row.kind, row.body)
        or derived(row.kind, row.body)[0] == decision
        or row.subject == f"decision:{decision}"
    )


def parse_row(index: int, text: str | bytes) -> AuditRow | None:
    """The entry stored at ``index``, or None when its text is not an entry at that index."""
    try:
        obj = orjson.loads(text)
        row = AuditRow(
            index=obj["index"],
            kind=obj["kind"],
            time=obj["time"],
            principal=obj["principal"],
            subject=obj["subject"],
            body=obj["body"],
        )
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    fields_ok = all(isinstance(v, str) for v in (row.kind, row.time, row.principal, row.subject))
    return row if fields_ok and row.index == index and isinstance(row.body, dict) else None


def query_page(engine: Engine, flt: AuditFilter) -> AuditPage:
    """Up to ``flt.limit`` candidate rows from ``flt.since_index`` on, ascending; those that truly match."""
    postgres = engine.dialect.name == "postgresql"
    query = select(_E.idx, _E.entry).where(*_conditions(flt, postgres)).order_by(_E.idx).limit(flt.limit)
    try:
        with engine.connect() as conn:
            fetched = conn.execute(query).all()
    except SQLAlchemyError as exc:
        raise LedgerUnavailable(f"ledger could not be queried: {describe_db_error(exc)}") from exc
    rows = [row for idx, text in fetched if (row := parse_row(int(idx), text)) is not None and matches(flt, row)]
    cursor = int(fetched[-1][0]) + 1 if fetched else flt.since_index
    return AuditPage(rows, cursor, cursor if len(fetched) == flt.limit else None)


def query_entries(engine: Engine, flt: AuditFilter) -> list[AuditRow]:
    """The entries matching ``flt`` on one page (see :func:`query_page` for continuing)."""
    return query_page(engine, flt).rows


Wait = Callable[[float], bool]
"""Waits up to the given seconds for new entries; True means stop following."""


def follow(engine: Engine, flt: AuditFilter, wait: Wait, *, poll_s: float = 0.5) -> Iterator[AuditRow]:
    """Every matching entry from ``flt.since_index`` on, then each new one as it is committed.

    Pages are read back to back while they are full; at the end of the ledger ``wait(poll_s)``
    is called (a ``threading.Event.wait`` stops it from another thread) before looking again.
    Entries are committed in index order, so the cursor never skips one.
    """
    current = flt
    while True:
        page = query_page(engine, current)
        yield from page.rows
        current = current.after(page.cursor - 1)
        if page.next_since_index is None and wait(poll_s):
            return
