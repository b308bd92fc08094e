"""Singleton duties of a replicated gateway, run only by the replica holding the ``ledger.writer`` lease.

Every gateway process (each worker of each ``mlwarden serve``, on one machine or many)
starts a :class:`DutyRunner`. They all compete for the lease :data:`WRITER_LEASE`; the one
holding it runs the registered duties on their schedules, the others wait. When the holder
dies its lease expires by the database clock within ``ttl`` seconds and another replica takes
it with the next epoch, then runs the duties from there.

Duties are callables taking the current :class:`~mlwarden.store.lease.LeaseTerm`. One that
writes state it must not write twice calls ``runner.lease.fence(conn)`` inside its own
transaction; an idempotent one (the checkpoint: one row per tree size) needs nothing more.
Built in: the periodic signed checkpoint (:meth:`Log.checkpoint`, stored and published).
Register more with :meth:`DutyRunner.register` (e.g. the audit watcher of issue 13).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import Engine

from mlwarden.errors import ConfigError, MlwardenError
from mlwarden.store.lease import DEFAULT_TTL, Lease, LeaseStatus, LeaseTerm, lease_engine, read_lease

log = structlog.get_logger("mlwarden.duties")

WRITER_LEASE = "ledger.writer"
"""The lease whose holder runs the ledger's singleton duties (checkpoints, and the audit watcher)."""
DEFAULT_CHECKPOINT_INTERVAL = 300.0
"""Seconds between stored and published checkpoints (each one is a row and a file that verify checks)."""

Duty = Callable[[LeaseTerm], None]


class DutySettings(BaseSettings):
    """``MLWARDEN_LEASE_TTL_SECONDS`` and ``MLWARDEN_CHECKPOINT_INTERVAL_SECONDS`` (0 turns checkpoints off)."""

    model_config = SettingsConfigDict(env_prefix="MLWARDEN_", extra="ignore")

    lease_ttl_seconds: float = DEFAULT_TTL
    checkpoint_interval_seconds: float = DEFAULT_CHECKPOINT_INTERVAL


@dataclass(slots=True)
class _Scheduled:
    name: str
    every: float
    run: Duty
    due: float = field(default=0.0)


class DutyRunner:
    """Runs registered duties while this process holds ``lease``; one daemon thread."""

    def __init__(self, lease: Lease, *, tick: float = 0.2, owns_engine: bool = False) -> None:
        self.lease = lease
        self._owns_engine = owns_engine
        self._tick = tick
        self._duties: list[_Scheduled] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._epoch: int | None = None
        self.runs: dict[str, int] = {}
        """How many times each duty has completed in this process."""

    def register(self, name: str, every: float, run: Duty) -> None:
        """Run ``run(term)`` every ``every`` seconds while this process holds the lease.

        A duty first runs ``every`` seconds after this process gains the lease (so a replica
        that just took over does not repeat at once what the dead one just did).
        """
        if every <= 0:
            raise ConfigError(f"duty {name!r} needs a positive interval, got {every:g}")
        self._duties.append(_Scheduled(name, every, run))
        self.runs.setdefault(name, 0)

    def start(self) -> DutyRunner:
        """Keep the lease and run the duties in the background."""
        self.lease.start()
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="mlwarden-duties", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self._tick):
            term = self.lease.term()
            if term is None:
                self._epoch = None
                continue
            now = time.monotonic()
            if term.epoch != self._epoch:  # a new term: every duty starts its schedule again
                self._epoch = term.epoch
                for duty in self._duties:
                    duty.due = now + duty.every
            for duty in self._duties:
                if duty.due <= now and self.lease.term() is not None and not self._stop.is_set():
                    self._run(duty, term)
                    duty.due = time.monotonic() + duty.every

    def _run(self, duty: _Scheduled, term: LeaseTerm) -> None:
        try:
            duty.run(term)
        except MlwardenError as exc:  # a failed round is retried on schedule; the runner keeps going
            log.warning("duty_failed", duty=duty.name, lease=term.name, epoch=term.epoch, error=exc.message)
            return
        except Exception as exc:  # a duty's bug must not stop the lease's other duties
            log.error("duty_crashed", duty=duty.name, lease=term.name, epoch=term.epoch, error=repr(exc)[:300])
            return
        self.runs[duty.name] = self.runs.get(duty.name, 0) + 1

    def status(self) -> dict[str, Any]:
        """``{"name", "holder", "epoch", "held_here", …}`` for /readyz: the database's view and ours."""
        held_here = self.lease.held
        try:
            seen: LeaseStatus | None = read_lease(self.lease.engine, self.lease.name)
        except MlwardenError:
            seen = None
        body: dict[str, Any] = {"name": self.lease.name, "holder": None, "epoch": None, "held_here": held_here}
        if seen is not None:
            body |= {"holder": seen.holder, "epoch": seen.epoch, "expires_in": round(seen.expires_in, 3)}
        return body

    def close(self) -> None:
        """Stop running duties and release the lease so another replica takes over at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.lease.close()
        if self._owns_engine:
            self.lease.engine.dispose()


def checkpoint_duty(checkpoint: Callable[[], str]) -> Duty:
    """The periodic signed checkpoint (``Log.checkpoint``): idempotent per tree size, so no fence needed."""

    def run(_term: LeaseTerm) -> None:
        checkpoint()

    return run


def start_duties(database_url: str, checkpoint: Callable[[], str], settings: DutySettings) -> DutyRunner:
    """A started runner on lease :data:`WRITER_LEASE` with the checkpoint duty (unless its interval is 0)."""
    engine = lease_engine(database_url, timeout=settings.lease_ttl_seconds / 3)
    runner = DutyRunner(Lease(engine, WRITER_LEASE, ttl=settings.lease_ttl_seconds), owns_engine=True)
    if settings.checkpoint_interval_seconds > 0:
        runner.register("checkpoint", settings.checkpoint_interval_seconds, checkpoint_duty(checkpoint))
    return runner.start()


def writer_lease(engine: Engine) -> LeaseStatus:
    """Who holds :data:`WRITER_LEASE` now (no CLI, no gateway needed)."""
    return read_lease(engine, WRITER_LEASE)
