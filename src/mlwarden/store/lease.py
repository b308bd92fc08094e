"""A named lease in the database: one holder at a time, expiry by the database clock, an epoch that fences.

Replicas of the gateway share one database; a lease elects the one that runs singleton
work. The ``leases`` row says who holds it (``holder``), how many times it has changed hands
(``epoch``, the fencing counter) and until when (``expires_at``, seconds since 1970 by the
*database's* clock, so no replica's wall clock matters). Every change is one conditional
``UPDATE``, so the database decides who wins a race:

* acquire: ``holder=me, epoch=epoch+1, expires_at=now+ttl`` where the lease is expired,
  vacant or already ours;
* renew: ``expires_at=now+ttl`` where it is ours, in the same epoch, and not expired;
* release: ``holder='', expires_at=now`` where it is ours in that epoch.

The holder also keeps a local deadline on the monotonic clock: the moment it *sent* the
winning statement plus ``(1 - SAFETY) * ttl``. The database expires the lease no sooner than
``ttl`` after that moment, so a holder that cannot renew (database down, process stalled)
stops believing it holds the lease before anyone else can take it. A write that must not
happen under a stale holder calls :meth:`Lease.fence` in its own transaction: it locks the
row and checks holder and epoch, so the lease cannot move until that transaction ends.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Connection, Double, Engine, cast, extract, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import Executable

from mlwarden.errors import ConfigError, StoreError
from mlwarden.store.engine import create_db_engine, describe_db_error, write_transaction
from mlwarden.store.schema import leases

log = structlog.get_logger("mlwarden.lease")

DEFAULT_TTL = 5.0
"""Seconds a lease lasts without renewal: a dead holder's lease moves within about this long."""
SAFETY = 0.2
"""Share of the TTL by which a holder gives up before the database would expire its lease."""
MIN_TTL = 0.5


class LeaseLost(StoreError):
    """This process does not (or no longer) hold the lease it needs."""


@dataclass(frozen=True, slots=True)
class LeaseStatus:
    """The lease as the database sees it now."""

    name: str
    holder: str | None
    """Who holds it; None when vacant or expired."""
    epoch: int
    expires_in: float
    """Seconds until it expires, by the database clock (0 when not held)."""

    def to_json(self) -> dict[str, Any]:
        """``{"name", "holder", "epoch", "expires_in"}``."""
        return {"name": self.name, "holder": self.holder, "epoch": self.epoch, "expires_in": round(self.expires_in, 3)}


@dataclass(frozen=True, slots=True)
class LeaseTerm:
    """One uninterrupted holding of a lease by this process."""

    name: str
    holder: str
    epoch: int
    valid_until: float
    """``time.monotonic()`` after which this process must assume it lost the lease."""

    def valid(self) -> bool:
        """Whether the term has not run out on this process's monotonic clock."""
        return time.monotonic() < self.valid_until


def database_now(engine: Engine) -> ColumnElement[float]:
    """The database's current time in seconds since 1970 (float), as a SQL expression."""
    if engine.dialect.name == "postgresql":
        return cast(extract("epoch", func.clock_timestamp()), Double)  # wall time at execution, not txn start
    return cast((func.julianday("now") - 2440587.5) * 86400.0, Double)


def default_holder_id() -> str:
    """``host:pid:random``: unique per process start, and says where the holder runs."""
    return f"{socket.gethostname()[:180]}:{os.getpid()}:{secrets.token_hex(4)}"


def lease_engine(url: str, timeout: float) -> Engine:
    """An engine for lease statements whose every wait (connect, lock, statement) ends within ``timeout`` seconds."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        seconds = max(2, int(timeout + 0.999))  # libpq's connect_timeout is whole seconds, at least 2
        parsed = parsed.update_query_dict(
            {"connect_timeout": str(seconds), "tcp_user_timeout": str(int(timeout * 1000))}
        )
    return create_db_engine(parsed.render_as_string(hide_password=False), lock_timeout_seconds=timeout)


def read_lease(engine: Engine, name: str) -> LeaseStatus:
    """Who holds lease ``name`` now (by the database clock); raises :class:`StoreError` when it cannot tell."""
    query = select(leases.c.holder, leases.c.epoch, leases.c.expires_at, database_now(engine)).where(
        leases.c.name == name
    )
    try:
        with engine.connect() as conn:
            row = conn.execute(query).first()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read lease {name!r}: {describe_db_error(exc)}") from exc
    if row is None:
        return LeaseStatus(name, None, 0, 0.0)
    left = float(row[2]) - float(row[3])
    holder = str(row[0]) if row[0] and left > 0 else None
    return LeaseStatus(name, holder, int(row[1]), max(left, 0.0) if holder else 0.0)


class Lease:
    """This process's claim on the named lease ``name`` (acquire, renew, release, keep in the background)."""

    def __init__(self, engine: Engine, name: str, *, ttl: float = DEFAULT_TTL, holder: str | None = None) -> None:
        if not MIN_TTL <= ttl <= 3600:
            raise ConfigError(f"lease ttl must be between {MIN_TTL} and 3600 seconds, got {ttl:g}")
        self.engine = engine
        self.name = name
        self.ttl = ttl
        self.holder = holder or default_holder_id()
        self._term: LeaseTerm | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._row_checked = False

    # ------------------------------------------------------------------ one step each
    def term(self) -> LeaseTerm | None:
        """The current term while it is valid; None when this process does not hold the lease."""
        term = self._term
        return term if term is not None and term.valid() else None

    @property
    def held(self) -> bool:
        """Whether this process holds the lease now (by its own, conservative, deadline)."""
        return self.term() is not None

    def try_acquire(self) -> LeaseTerm | None:
        """One attempt to take the lease (vacant, expired or ours): a new term with the next epoch, or None."""
        if not self._row_checked:
            self._ensure_row()
        now = database_now(self.engine)
        statement = (
            update(leases)
            .where(leases.c.name == self.name)
            .where((leases.c.expires_at <= now) | (leases.c.holder == "") | (leases.c.holder == self.holder))
            .values(holder=self.holder, epoch=leases.c.epoch + 1, expires_at=now + self.ttl)
            .returning(leases.c.epoch)
        )
        return self._claim(statement, renewing=False)

    def renew(self) -> LeaseTerm | None:
        """Extend the current term; None (and the term is dropped) when the lease was lost."""
        term = self._term
        if term is None:
            return None
        now = database_now(self.engine)
        statement = (
            update(leases)
            .where(leases.c.name == self.name, leases.c.holder == self.holder, leases.c.epoch == term.epoch)
            .where(leases.c.expires_at > now)
            .values(expires_at=now + self.ttl)
            .returning(leases.c.epoch)
        )
        return self._claim(statement, renewing=True)

    def release(self) -> None:
        """Give the lease up now (others may take it at once); a no-op when not held."""
        with self._lock:
            term, self._term = self._term, None
        if term is None:
            return
        statement = (
            update(leases)
            .where(leases.c.name == self.name, leases.c.holder == self.holder, leases.c.epoch == term.epoch)
            .values(holder="", expires_at=database_now(self.engine))
        )
        with self._transaction() as conn:
            conn.execute(statement)
        log.info("lease_released", lease=self.name, holder=self.holder, epoch=term.epoch)

    def fence(self, conn: Connection) -> LeaseTerm:
        """Inside the caller's write transaction: lock the lease row and check this process still holds it.

        Raises :class:`LeaseLost` otherwise. Until ``conn``'s transaction ends nobody can take
        the lease over, so what the transaction writes was written by the current holder.
        """
        term = self.term()
        if term is None:
            raise LeaseLost(f"lease {self.name!r} is not held by this process")
        query = select(leases.c.epoch).where(
            leases.c.name == self.name,
            leases.c.holder == self.holder,
            leases.c.epoch == term.epoch,
            leases.c.expires_at > database_now(self.engine),
        )
        if conn.dialect.name != "sqlite":  # SQLite's write transaction already excludes every other writer
            query = query.with_for_update()
        if conn.execute(query).first() is None:
            raise LeaseLost(f"lease {self.name!r} moved away from this process (epoch {term.epoch})")
        return term

    def _claim(self, statement: Executable, *, renewing: bool) -> LeaseTerm | None:
        sent = time.monotonic()
        with self._transaction() as conn:
            row = conn.execute(statement).first()
        with self._lock:
            before = self._term
            if row is None:
                self._term = None
                if renewing and before is not None:
                    log.warning("lease_lost", lease=self.name, holder=self.holder, epoch=before.epoch)
                return None
            self._term = LeaseTerm(self.name, self.holder, int(row[0]), sent + (1.0 - SAFETY) * self.ttl)
        if not renewing:
            log.info("lease_acquired", lease=self.name, holder=self.holder, epoch=self._term.epoch)
        return self._term

    def _ensure_row(self) -> None:
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        statement = (
            dialect.insert(leases)
            .values(name=self.name, holder="", epoch=0, expires_at=0.0)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        with self._transaction() as conn:
            conn.execute(statement)
        self._row_checked = True

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        try:
            with write_transaction(self.engine) as conn:
                if conn.dialect.name == "postgresql":
                    ms = max(1, int(self.ttl * SAFETY * 1000))
                    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {ms}")
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"lease {self.name!r}: {describe_db_error(exc)}") from exc

    # ------------------------------------------------------------------ in the background
    def start(self) -> Lease:
        """Try once now, then keep the lease in a daemon thread: take it when free, renew every third of the TTL."""
        if self._thread is None:
            delay = self._step()
            self._thread = threading.Thread(
                target=self._keep, args=(delay,), name=f"mlwarden-lease-{self.name}", daemon=True
            )
            self._thread.start()
        return self

    def _keep(self, delay: float) -> None:
        while not self._stop.wait(delay):
            delay = self._step()

    def _step(self) -> float:
        """Renew or try to take the lease; the seconds until the next step."""
        try:
            term = self.renew() if self.term() is not None else self.try_acquire()
        except StoreError as exc:
            log.warning("lease_unreachable", lease=self.name, holder=self.holder, error=exc.message)
            term = self.term()
        return self.ttl / 3 if term is not None else min(1.0, self.ttl / 4)

    def close(self) -> None:
        """Stop the background thread and release the lease if held (errors are logged, not raised)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.ttl + 5)
        try:
            self.release()
        except StoreError as exc:
            log.warning("lease_release_failed", lease=self.name, holder=self.holder, error=exc.message)
