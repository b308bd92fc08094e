"""The watcher: reads the ledger in index order from a durable cursor and records what the rules raise.

Each tick reads the entries after the cursor as one chunk (:func:`~mlwarden.monitor.stream.read_batch`:
kinds from the entry text, predictions no rule opens left unparsed), runs the rules over it
(:meth:`~mlwarden.monitor.rules.RuleSet.observe_batch`), and in ONE transaction appends
an ``alert.raised`` entry per new alert, caches it in ``alerts``, hands it to ``on_alert``
(the outbox) and moves the cursor (compare-and-set, fenced by the ``monitor.watcher`` lease
when one is given). A crash before the commit leaves the cursor where it was, so the next
watcher reads the same entries again: no entry is skipped, and no alert recorded twice
(ids are derived from the rule and the evidence, and an id already cached is not raised again).

Rule state (windows) is rebuilt on start and after any failed tick by replaying the entries
of the longest rule window before the cursor; the ``alert.raised`` entries in that stretch
tell each rule which evidence an alert already covers, so replay arrives at the state the
previous watcher had.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import structlog
from sqlalchemy import Connection, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from mlwarden.errors import MlwardenError, StoreError
from mlwarden.ledger.entry import utc_now
from mlwarden.monitor.alert import ALERT_RAISED, Alert
from mlwarden.monitor.rules import RuleSet
from mlwarden.monitor.stream import FINDER, EntryBatch, UnreadableEntry, read_batch, read_entry
from mlwarden.store.lease import Lease
from mlwarden.store.schema import alerts, watch_cursors
from mlwarden.workspace import Workspace

log = structlog.get_logger("mlwarden.watch")

WATCHER_LEASE = "monitor.watcher"
"""The lease whose holder (one per workspace, across workers and replicas) runs the watcher."""
CURSOR = "default"
PRINCIPAL = FINDER
BATCH = 5000

OnAlert = Callable[[Connection, Alert], None]


def no_op(_conn: Connection, _alert: Alert) -> None:
    """The default ``on_alert``: nothing besides the ledger entry and the cache row."""


class Watcher:
    """One workspace's watcher (call :meth:`tick` in a loop, or :meth:`run`)."""

    def __init__(
        self,
        ws: Workspace,
        rules: Callable[[], RuleSet],
        *,
        name: str = CURSOR,
        batch: int = BATCH,
        on_alert: OnAlert = no_op,
        lease: Lease | None = None,
    ) -> None:
        self.ws = ws
        self.make_rules = rules
        self.name = name
        self.batch = batch
        self.on_alert = on_alert
        self.lease = lease
        self.tick_hooks: list[Callable[[], None]] = []
        """Called after every tick, in the watcher's thread (e.g. the sinks' delivery loop)."""
        self._rules: RuleSet | None = None
        self._next = 0
        self.processed = 0
        self.raised: dict[tuple[str, str], int] = {}
        """Alerts recorded by this process, by (rule, severity)."""
        self.found: dict[tuple[str, str], int] = {}
        """Alerts the rules raised in committed ticks (new or already recorded), by (rule, severity)."""

    # ------------------------------------------------------------------ cursor
    def cursor(self) -> int:
        """The first ledger index not yet processed (creates the cursor row at 0)."""
        try:
            with self.ws.engine.begin() as conn:
                found = conn.execute(
                    select(watch_cursors.c.next_index).where(watch_cursors.c.name == self.name)
                ).scalar()
                if found is None:
                    conn.execute(insert(watch_cursors).values(name=self.name, next_index=0, updated=utc_now()))
                    return 0
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read the watcher's cursor: {exc.__class__.__name__}") from exc
        return int(found)

    # ------------------------------------------------------------------ rule state
    def rebuild(self) -> None:
        """Fresh rules, brought to the cursor by replaying the longest window before it (alerts discarded)."""
        rules = self.make_rules()
        start_at = self.cursor()
        if start_at > 0 and rules.horizon > 0:
            begin = self._first_after(start_at, rules.horizon)
            for chunk in range(begin, start_at, self.batch):
                rules.observe_batch(self._batch(chunk, min(start_at, chunk + self.batch), rules))
        self._rules, self._next = rules, start_at
        log.info("watch_rules_ready", cursor=start_at, rules=len(rules.rules))

    def _first_after(self, cursor: int, horizon: float) -> int:
        """The first index whose time is within ``horizon`` seconds of entry ``cursor - 1`` (binary search)."""
        cut = self._time_of(cursor - 1) - horizon
        low, high = 0, cursor - 1
        while low < high:
            mid = (low + high) // 2
            if self._time_of(mid) < cut:
                low = mid + 1
            else:
                high = mid
        return low

    def _time_of(self, index: int) -> float:
        with self.ws.engine.connect() as conn:
            found = conn.execute(text("SELECT entry FROM ledger_entries WHERE idx = :i"), {"i": index}).scalar()
        try:
            return read_entry(index, found).at if found is not None else 0.0
        except UnreadableEntry:
            return 0.0

    # ------------------------------------------------------------------ reading
    def _batch(self, start: int, stop: int, rules: RuleSet) -> EntryBatch:
        """Entries ``start..stop-1`` as the rules take them; a missing or unreadable one is a finding."""
        with self.ws.engine.connect() as conn:
            rows = read_rows(conn, start, stop)
        return read_batch(rows, start, stop, rules.plan)

    # ------------------------------------------------------------------ one step
    def tick(self) -> int:
        """Process up to ``batch`` new entries; how many were processed."""
        if self._rules is None:
            self.rebuild()
        rules = self._rules
        if rules is None:  # pragma: no cover - rebuild always sets it
            return 0
        start = self._next
        stop = min(self.ws.log.size(), start + self.batch)
        if stop <= start:
            self._hooks()
            return 0
        try:
            found = rules.observe_batch(self._batch(start, stop, rules))
            self._commit(start, stop, found)
        except BaseException:
            self._rules = None  # the rules saw entries that were not committed: rebuild before the next tick
            raise
        self._next = stop
        self.processed += stop - start
        for alert in found:
            key = (alert.rule, alert.severity.value)
            self.found[key] = self.found.get(key, 0) + 1
        self._hooks()
        return stop - start

    def _commit(self, start: int, stop: int, found: list[Alert]) -> None:
        with self.ws.log.transaction() as tx:
            if self.lease is not None:
                self.lease.fence(tx.conn)
            moved = tx.conn.execute(
                update(watch_cursors)
                .where(watch_cursors.c.name == self.name, watch_cursors.c.next_index == start)
                .values(next_index=stop, updated=utc_now())
            )
            if moved.rowcount != 1:
                raise StoreError(f"the watcher's cursor moved away from {start}: another watcher is running")
            known = _recorded(tx.conn, [a.alert_id for a in found])
            for alert in found:
                if alert.alert_id in known:
                    continue  # already recorded (idempotent by id)
                known.add(alert.alert_id)
                receipt = tx.append(
                    kind=ALERT_RAISED, subject=f"alert:{alert.alert_id}", body=alert.to_dict(), principal=PRINCIPAL
                )
                recorded = replace(alert, entry_index=receipt.index)
                tx.conn.execute(insert(alerts).values(**row_of(recorded)))
                self.on_alert(tx.conn, recorded)
                key = (alert.rule, alert.severity.value)
                self.raised[key] = self.raised.get(key, 0) + 1
                log.warning("alert_raised", alert_id=alert.alert_id, rule=alert.rule, severity=alert.severity.value,
                            first_index=alert.first_index, last_index=alert.last_index)  # fmt: skip

    def _hooks(self) -> None:
        for hook in self.tick_hooks:
            try:
                hook()
            except Exception as exc:  # a sink's failure must never stop detection
                log.error("watch_hook_failed", error=repr(exc)[:300])

    # ------------------------------------------------------------------ the loop
    def run(self, stop: threading.Event, *, idle: float = 0.2) -> None:
        """Tick until ``stop`` is set; wait ``idle`` seconds when caught up, not holding the lease, or failing."""
        while not stop.is_set():
            if self.lease is not None and self.lease.term() is None:
                self._rules = None  # another process may move the cursor meanwhile
                stop.wait(idle)
                continue
            try:
                done = self.tick()
            except MlwardenError as exc:
                log.warning("watch_tick_failed", error=exc.message)
                stop.wait(idle)
                continue
            if done < self.batch:
                stop.wait(idle)

    @property
    def rules(self) -> RuleSet | None:
        """The rules in their current state (None until the first tick or after a failed one)."""
        return self._rules

    @property
    def position(self) -> int:
        """The next index this watcher will read (its cursor as of its last committed tick)."""
        return self._next

    def lag(self) -> int:
        """Entries in the ledger not yet processed."""
        return max(0, self.ws.log.size() - self._next)


def row_of(alert: Alert) -> dict[str, Any]:
    """The ``alerts`` cache row of a recorded alert."""
    return {
        "alert_id": alert.alert_id, "rule": alert.rule, "severity": alert.severity.value,
        "principal": alert.principal, "subject": alert.subject, "first_index": alert.first_index,
        "last_index": alert.last_index, "summary": alert.summary, "time": alert.time,
        "entry_index": alert.entry_index,
    }  # fmt: skip


def _recorded(conn: Connection, ids: list[str]) -> set[str]:
    """Which of these alert ids are already cached (one query per 500 ids, not one per alert)."""
    known: set[str] = set()
    for at in range(0, len(ids), 500):
        chunk = ids[at : at + 500]
        known.update(r[0] for r in conn.execute(select(alerts.c.alert_id).where(alerts.c.alert_id.in_(chunk))))
    return known


_ROWS = "SELECT idx, kind, entry FROM ledger_entries WHERE idx >= {a} AND idx < {b} ORDER BY idx"


def read_rows(conn: Connection, start: int, stop: int) -> list[tuple[int, str, str]]:
    """``(idx, kind column, entry text)`` of entries ``start..stop-1`` in one query (the driver's own tuples).

    The ``kind`` column is only a hint (anyone with the database can edit it): the text decides.
    """
    marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    cursor = conn.connection.cursor()  # the driver's cursor: plain tuples, no result rows to wrap
    try:
        cursor.execute(_ROWS.format(a=marker, b=marker), (start, stop))
        rows: list[Any] = list(cursor.fetchall())
    finally:
        cursor.close()
    if rows and not isinstance(rows[0][2], str):  # a driver that hands text over as bytes
        rows = [(int(i), str(k), bytes(e).decode()) for i, k, e in rows]
    return rows


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass (bounded waiting for demos and tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
