"""Audit queries over the ledger: filtered, keyset-paginated by index, and followed like ``tail -f``.

The lookup columns only choose candidate rows; the database is not trusted, so every row is
parsed and checked against the filter from its own entry text before it is returned. A
column that lies can hide an entry from a query (``ledger verify`` names such a row), never
make a query return an entry that does not match.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from sqlalchemy import ColumnElement, Connection, Engine, Select, and_, func, or_, select, union_all
from sqlalchemy.exc import SQLAlchemyError

from mlwarden.audit.filters import AuditFilter, entry_time
from mlwarden.errors import LedgerUnavailable
from mlwarden.ledger.columns import STATUS_KIND, derived
from mlwarden.ledger.entry import Entry
from mlwarden.ledger.kinds import recorded_refs
from mlwarden.ledger.log import ref_index
from mlwarden.store.engine import describe_db_error
from mlwarden.store.schema import ledger_entries

SUMMARY_KIND = "request.rejected_summary"
"""Unauthenticated rejections summed per window: ``--status`` also finds those that counted it."""
SUMMARY_PRINCIPAL = "system:gateway"
"""Who records the summaries (the gateway itself): a query for another principal never reads them."""
_E = ledger_entries.c


AuditRow = Entry
"""One entry as an audit query returns it: the ledger's own parsed entry (its body carries commitments,
never sealed payloads)."""


@dataclass(frozen=True, slots=True)
class AuditPage:
    """Matching rows and where to continue.

    ``cursor`` is the first index not yet examined; ``next_since_index`` is the cursor when
    more entries may match (the page was full), else None.
    """

    rows: list[AuditRow]
    cursor: int
    next_since_index: int | None


MAX_SUBJECTS = 64
"""A subject prefix covering at most this many distinct subjects is read subject by subject, in index order."""


def _prefix_range(column: ColumnElement[str], prefix: str, postgres: bool) -> ColumnElement[bool]:
    """``column`` starts with ``prefix`` as a byte range the index answers (C collation on PostgreSQL)."""
    col = column.collate("C") if postgres else column
    upper = _successor(prefix)
    return col >= prefix if upper is None else and_(col >= prefix, col < upper)


def _successor(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix`` (None when there is no simple one)."""
    last = ord(prefix[-1])
    if last >= 0x10FFFF or 0xD7FF <= last <= 0xDFFF:
        return None  # the text check keeps only the prefixed rows
    return prefix[:-1] + chr(last + 1)


class _Plan:
    """How one query reads: index-ordered streams, merged by index, each with the remaining filters.

    Each stream is one equality on an indexed ``(column, idx)`` pair, so the database reads it
    in index order and stops at the page size; the other filters ride along unindexed (on
    SQLite an expression of the column, so the planner cannot pick a range index and sort).
    A time range becomes an index range first (entry times never decrease along the log).
    """

    def __init__(self, conn: Connection, flt: AuditFilter) -> None:
        self.conn = conn
        self.flt = flt
        self.postgres = conn.dialect.name == "postgresql"

    def _plain(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        if self.postgres:
            return column
        return column + 0 if column.key in ("status", "idx") else column.op("||")("")

    def _conditions(self, skip: str) -> list[ColumnElement[bool]]:
        flt, p = self.flt, self._plain
        where: list[ColumnElement[bool]] = []
        if flt.kinds and skip != "kinds":
            where.append(p(_E.kind).in_(flt.kinds))
        if flt.principal is not None and skip != "principal":
            where.append(p(_E.principal) == flt.principal)
        if flt.subject_prefix is not None and skip != "subject":
            where.append(_prefix_range(p(_E.subject), flt.subject_prefix, self.postgres))
        if flt.model is not None and skip != "subject":
            model = f"model:{flt.model}"
            where.append(or_(p(_E.subject) == model, _prefix_range(p(_E.subject), model + ":", self.postgres)))
        if flt.status is not None and skip != "status":
            where.append(or_(p(_E.status) == flt.status, p(_E.kind) == SUMMARY_KIND))
        if flt.decision is not None and skip != "decision":
            where.append(or_(p(_E.idx) == ref_index(flt.decision), p(_E.decision) == flt.decision,
                             p(_E.subject) == f"decision:{flt.decision}"))  # fmt: skip
        return where

    def _first_at(self, moment: Any) -> int | None:
        """The first index recorded at or after ``moment``: a binary search over the primary key.

        Entry times never decrease along the log, so about 20 point reads find the bound on a
        million entries, with no time index for every append to maintain.
        """
        wanted = entry_time(moment)
        mark = "?" if self.conn.dialect.paramstyle == "qmark" else "%s"
        probe = f"SELECT entry_time FROM ledger_entries WHERE idx = {mark}"  # noqa: S608 - a constant statement
        top = self.conn.execute(select(func.max(_E.idx))).scalar()
        if top is None:
            return None
        low, high = 0, int(top) + 1  # the answer lies in [low, high]; high: nothing at or after
        while low < high:
            middle = (low + high) // 2
            row = self.conn.exec_driver_sql(probe, (middle,)).first()
            if row is not None and row[0] is not None and str(row[0]) >= wanted:
                high = middle
            else:
                low = middle + 1
        return None if low > int(top) else low

    def index_range(self) -> tuple[int, int | None] | None:
        """``[low, high)`` of indices the time range covers (None: nothing can match)."""
        low, high = self.flt.since_index, None
        if self.flt.since is not None:
            first = self._first_at(self.flt.since)
            if first is None:
                return None
            low = max(low, first)
        if self.flt.until is not None:
            high = self._first_at(self.flt.until)
        return None if high is not None and high <= low else (low, high)

    def _subjects(self) -> list[str] | None:
        """The distinct subjects a prefix or model filter covers, if few (one index seek each)."""
        flt = self.flt
        col = _E.subject.collate("C") if self.postgres else _E.subject
        found: list[str] = []
        if flt.model is not None:
            exact = self.conn.execute(select(_E.subject).where(col == f"model:{flt.model}").limit(1)).first()
            found += [] if exact is None else [str(exact[0])]
        prefix = f"model:{flt.model}:" if flt.model is not None else flt.subject_prefix
        if prefix is None:
            return found
        upper, current, inclusive = _successor(prefix), prefix, True
        while True:
            bound = col >= current if inclusive else col > current
            query = select(_E.subject).where(bound, *([col < upper] if upper else []))
            row = self.conn.execute(query.order_by(col).limit(1)).first()
            if row is None or not str(row[0]).startswith(prefix):
                return found
            current, inclusive = str(row[0]), False
            found.append(current)
            if len(found) > MAX_SUBJECTS:
                return None

    def _streams(self) -> tuple[str, list[ColumnElement[bool]]]:
        flt = self.flt
        if flt.decision is not None:
            return "decision", [_E.idx == ref_index(flt.decision), _E.decision == flt.decision,
                                _E.subject == f"decision:{flt.decision}"]  # fmt: skip
        if flt.status is not None:
            streams = []
            if not flt.kinds or STATUS_KIND in flt.kinds:  # (status, principal, idx) holds rejections only
                by = [_E.principal == flt.principal] if flt.principal is not None else []
                streams.append(and_(_E.status == flt.status, *by))
            if (not flt.kinds or SUMMARY_KIND in flt.kinds) and flt.principal in (None, SUMMARY_PRINCIPAL):
                streams.append(_E.kind == SUMMARY_KIND)
            return "status", streams
        if flt.principal is not None:
            return "principal", [_E.principal == flt.principal]
        if flt.kinds:
            return "kinds", [_E.kind == kind for kind in flt.kinds]
        if flt.subject_prefix is not None or flt.model is not None:
            subjects = self._subjects()
            if subjects is not None:
                col = _E.subject.collate("C") if self.postgres else _E.subject
                return "subject", [col == subject for subject in subjects]
        return "", []

    def query(self, low: int, high: int | None, *, newest_first: bool = False) -> Select[tuple[Any, Any]]:
        """The page's SELECT: streams merged by index (or one index-ordered scan), ``limit`` rows.

        Oldest first from ``low`` (the API, exports); ``newest_first`` reads the same streams
        backwards from just below ``high`` (the console's pages).
        """
        skip, streams = self._streams()
        bounds = [_E.idx >= low, *([_E.idx < high] if high is not None else [])]
        rest = self._conditions(skip)
        if skip and not streams:
            streams = [_E.idx < 0]  # the filter's subjects do not exist: nothing matches
        order = _E.idx.desc() if newest_first else _E.idx
        if len(streams) <= 1:
            return select(_E.idx, _E.entry).where(*bounds, *streams, *rest).order_by(order).limit(self.flt.limit)
        # Several streams: merge their indices first (index-only reads), then read the page's entries once.
        parts = [select(_E.idx).where(*bounds, driving, *rest).order_by(order).limit(self.flt.limit)
                 for driving in streams]  # fmt: skip
        merged = union_all(*(part.subquery().select() for part in parts)).subquery()
        by = merged.c.idx.desc() if newest_first else merged.c.idx
        page = select(merged.c.idx).order_by(by).limit(self.flt.limit)
        return select(_E.idx, _E.entry).where(_E.idx.in_(page.scalar_subquery())).order_by(order)


def newest_first(conn: Connection, flt: AuditFilter, low: int, before: int | None) -> list[tuple[int, str]]:
    """Up to ``flt.limit`` candidate rows in ``[low, before)``, newest first, by the same plan as :func:`query_page`.

    Candidates only: the caller keeps those whose own text matches (:func:`parse_row`, :func:`matches`).
    """
    rows = conn.execute(_Plan(conn, flt).query(low, before, newest_first=True)).all()
    return [(int(index), str(text)) for index, text in rows]


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


class HasEngine(Protocol):
    """A workspace (anything holding the database engine)."""

    @property
    def engine(self) -> Engine: ...


Source = Engine | HasEngine
"""Where entries are read from: an engine, or a workspace."""


def _engine(source: Source) -> Engine:
    return source if isinstance(source, Engine) else source.engine


def query_page(source: Source, flt: AuditFilter) -> AuditPage:
    """Up to ``flt.limit`` candidate rows from ``flt.since_index`` on, ascending; those that truly match."""
    try:
        with _engine(source).connect() as conn:
            plan = _Plan(conn, flt)
            span = plan.index_range()
            fetched = [] if span is None else conn.execute(plan.query(*span)).all()
    except SQLAlchemyError as exc:
        raise LedgerUnavailable(f"ledger could not be queried: {describe_db_error(exc)}") from exc
    rows = [row for idx, text in fetched if (row := parse_row(int(idx), text)) is not None and matches(flt, row)]
    cursor = int(fetched[-1][0]) + 1 if fetched else flt.since_index
    return AuditPage(rows, cursor, cursor if len(fetched) == flt.limit else None)


def query_entries(source: Source, flt: AuditFilter) -> list[AuditRow]:
    """The entries matching ``flt`` on one page (see :func:`query_page` for continuing)."""
    return query_page(source, flt).rows


Wait = Callable[[float], bool]
"""Waits up to the given seconds for new entries; True means stop following."""


def follow(source: Source, flt: AuditFilter, wait: Wait, *, poll_s: float = 0.5) -> Iterator[AuditRow]:
    """Every matching entry from ``flt.since_index`` on, then each new one as it is committed.

    Pages are read back to back while they are full; at the end of the ledger ``wait(poll_s)``
    is called (a ``threading.Event.wait`` stops it from another thread) before looking again.
    Entries are committed in index order, so the cursor never skips one.
    """
    current = flt
    while True:
        page = query_page(source, current)
        yield from page.rows
        current = current.after(page.cursor - 1)
        if page.next_since_index is None and wait(poll_s):
            return
