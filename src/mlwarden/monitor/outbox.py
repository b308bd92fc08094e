"""The durable alert outbox: rows written with the alert, delivered with retries, never lost.

``enqueue(conn, alert, sinks)`` runs inside the transaction that records the ``alert.raised``
entry, so an alert and its deliveries commit together. ``deliver_due`` claims due rows,
reads each alert from the proven ledger (:mod:`mlwarden.monitor.ledger_alerts`), sends it
and marks the row delivered, or schedules a retry with exponential backoff and jitter.
Delivery is at least once: a crash between sending and marking sends again, with the same
``Idempotency-Key`` (``<alert_id>/<sink>``), which receivers use to drop the duplicate.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, and_, func, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from mlwarden.errors import StoreError, VerificationError
from mlwarden.monitor.alert import Alert
from mlwarden.monitor.ledger_alerts import AlertSource
from mlwarden.monitor.sinks.interface import AlertSink, SinkUnavailable
from mlwarden.store.engine import describe_db_error, write_transaction
from mlwarden.store.schema import alert_outbox as ob

log = structlog.get_logger("mlwarden.alerts")

_PENDING = and_(ob.c.delivered_at.is_(None), ob.c.refused_at.is_(None))


def idempotency_key(alert_id: str, sink: str) -> str:
    """The key a delivery of ``alert_id`` to ``sink`` carries (the same on every retry)."""
    return f"{alert_id}/{sink}"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff: ``base * 2**(failures-1)`` capped at ``max_seconds``, times a jitter in [0.5, 1]."""

    base_seconds: float = 1.0
    max_seconds: float = 60.0
    claim_seconds: float = 120.0
    """A row being delivered is left alone this long (then another pass may retry it)."""
    batch: int = 100
    """Rows looked at per pass (a pass is bounded: at most one failed attempt per sink)."""

    def delay(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds until the next attempt after ``failures`` consecutive failures."""
        ceiling = min(self.max_seconds, self.base_seconds * 2.0 ** min(max(failures, 1) - 1, 40))
        return ceiling * (0.5 + 0.5 * rand())


DEFAULT_RETRY = RetryPolicy()


def _insert(conn: Connection) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(ob).on_conflict_do_nothing(index_elements=["idempotency_key"])
    return sqlite.insert(ob).on_conflict_do_nothing(index_elements=["idempotency_key"])


def enqueue(conn: Connection, alert: Alert, sinks: Iterable[AlertSink], *, now: float | None = None) -> int:
    """Add a row per sink that takes ``alert``'s severity, in the caller's transaction; return rows added.

    Idempotent: the same alert enqueued twice (a replayed watcher) adds nothing the second time.
    """
    stamp = time.time() if now is None else now
    rows = [
        {
            "idempotency_key": idempotency_key(alert.alert_id, sink.name),
            "alert_id": alert.alert_id,
            "sink": sink.name,
            "entry_index": alert.entry_index,
            "after_index": alert.last_index,
            "created": stamp,
            "attempts": 0,
            "failures": 0,
            "next_attempt_at": stamp,
        }
        for sink in sinks
        if alert.severity.rank >= sink.min_severity.rank
    ]
    if not rows:
        return 0
    return max(0, int(conn.execute(_insert(conn).values(rows)).rowcount))  # one statement: a true count


@dataclass(slots=True)
class DeliveryReport:
    """What one pass did."""

    delivered: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    """Sink name to the error of its failed attempt (one per sink per pass)."""
    refused: list[str] = field(default_factory=list)
    waiting: int = 0
    """Due rows left for a later pass (their sink failed in this one, or is not configured)."""

    def to_json(self) -> dict[str, Any]:
        """JSON for the CLI."""
        return {"delivered": len(self.delivered), "failed": self.failed, "refused": len(self.refused),
                "waiting": self.waiting}  # fmt: skip


def _due(engine: Engine, now: float, batch: int) -> list[Any]:
    query = (
        select(ob.c.idempotency_key, ob.c.alert_id, ob.c.sink, ob.c.entry_index, ob.c.after_index,
               ob.c.failures, ob.c.next_attempt_at)
        .where(_PENDING, ob.c.next_attempt_at <= now)
        .order_by(ob.c.created, ob.c.idempotency_key)
        .limit(batch)
    )  # fmt: skip
    with engine.connect() as conn:
        return list(conn.execute(query).all())


def _update(engine: Engine, key: str, condition: Any, **values: Any) -> bool:
    with write_transaction(engine) as conn:
        result = conn.execute(update(ob).where(ob.c.idempotency_key == key, _PENDING, condition).values(**values))
        return bool(result.rowcount == 1)


def deliver_due(
    engine: Engine,
    sinks: Mapping[str, AlertSink] | Sequence[AlertSink],
    now: float,
    *,
    alerts: AlertSource,
    policy: RetryPolicy = DEFAULT_RETRY,
    clock: Callable[[], float] = time.time,
    rand: Callable[[], float] = random.random,
) -> DeliveryReport:
    """One bounded pass: deliver up to ``policy.batch`` due rows; a sink that fails is skipped for the rest."""
    by_name = dict(sinks) if isinstance(sinks, Mapping) else {s.name: s for s in sinks}
    report = DeliveryReport()
    proven: dict[str, Alert] = {}
    try:
        rows = _due(engine, now, policy.batch)
        for row in rows:
            sink = by_name.get(row.sink)
            if sink is None or row.sink in report.failed:
                report.waiting += 1
                continue
            key = idempotency_key(row.alert_id, row.sink)  # recomputed: the stored key is not trusted
            if not _update(engine, row.idempotency_key, ob.c.next_attempt_at == row.next_attempt_at,
                           attempts=ob.c.attempts + 1, next_attempt_at=now + policy.claim_seconds):  # fmt: skip
                continue  # another deliverer claimed it
            try:
                alert = proven.get(row.alert_id) or alerts.verified(row.alert_id, row.entry_index, row.after_index)
            except VerificationError as exc:
                _update(engine, row.idempotency_key, true(), refused_at=clock(), last_error=exc.message[:1000])
                log.error("alert_outbox_row_refused", sink=row.sink, alert_id=row.alert_id, error=exc.message)
                report.refused.append(key)
                continue
            proven[row.alert_id] = alert
            try:
                sink.deliver(alert, key)
            except Exception as exc:  # one sink's fault (down, or a bug) must not stop the others
                error = (
                    exc.message if isinstance(exc, SinkUnavailable) else f"{row.sink}: {type(exc).__name__} in the sink"
                )
                failures = int(row.failures) + 1
                _update(engine, row.idempotency_key, true(), failures=failures, last_error=error[:1000],
                        next_attempt_at=clock() + policy.delay(failures, rand))  # fmt: skip
                report.failed[row.sink] = error
                continue
            _update(engine, row.idempotency_key, true(), delivered_at=clock(), last_error=None)
            report.delivered.append(key)
    except SQLAlchemyError as exc:
        raise StoreError(f"alert outbox is unavailable: {describe_db_error(exc)}") from exc
    return report


@dataclass(frozen=True, slots=True)
class SinkBacklog:
    """What waits for one sink."""

    sink: str
    pending: int
    oldest_pending_seconds: float
    failed_attempts: int
    """Failed attempts of the alerts still pending."""
    refused: int
    last_error: str | None

    def to_json(self) -> dict[str, Any]:
        """JSON for the CLI."""
        return {
            "sink": self.sink,
            "pending": self.pending,
            "oldest_pending_seconds": round(self.oldest_pending_seconds, 3),
            "failed_attempts": self.failed_attempts,
            "refused": self.refused,
            "last_error": self.last_error,
        }


def backlog(engine: Engine, now: float) -> list[SinkBacklog]:
    """Pending and refused rows per sink (reads only undelivered rows, through the due index)."""
    pending = select(ob.c.sink, func.count(), func.min(ob.c.created), func.sum(ob.c.failures)).where(_PENDING)
    refused = select(ob.c.sink, func.count()).where(ob.c.delivered_at.is_(None), ob.c.refused_at.is_not(None))
    errors = select(ob.c.sink, ob.c.last_error).where(_PENDING, ob.c.last_error.is_not(None)).order_by(ob.c.created)
    try:
        with engine.connect() as conn:
            waiting = {r[0]: r for r in conn.execute(pending.group_by(ob.c.sink)).all()}
            bad = {r[0]: int(r[1]) for r in conn.execute(refused.group_by(ob.c.sink)).all()}
            last = {r[0]: r[1] for r in conn.execute(errors).all()}
    except SQLAlchemyError as exc:
        raise StoreError(f"alert outbox is unavailable: {describe_db_error(exc)}") from exc
    out = []
    for sink in sorted(set(waiting) | set(bad)):
        row = waiting.get(sink)
        count = int(row[1]) if row else 0
        oldest = max(0.0, now - float(row[2])) if row and row[2] is not None else 0.0
        out.append(SinkBacklog(sink, count, oldest, int(row[3] or 0) if row else 0, bad.get(sink, 0), last.get(sink)))
    return out
