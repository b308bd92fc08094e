"""The delivery loop: a thread that runs outbox passes when woken or every few seconds, and says when a sink is down.

It runs beside the watcher (``tick`` is the watcher's tick hook: it only sets an event,
so the watcher never waits on a receiver) or alone (``mlwarden sinks deliver``). It
never touches the gateway's workers: predictions go on whatever the sinks do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy import Connection, Engine

from mlwarden.errors import MlwardenError
from mlwarden.monitor.alert import Alert
from mlwarden.monitor.ledger_alerts import AlertSource
from mlwarden.monitor.outbox import DEFAULT_RETRY, DeliveryReport, RetryPolicy, backlog, deliver_due, enqueue
from mlwarden.monitor.sinks.interface import AlertSink

log = structlog.get_logger("mlwarden.alerts")

REPEAT_WARNING_SECONDS = 60.0
"""While a sink stays down, its warning is repeated at most this often."""


class DeliveryLoop:
    """Delivers due outbox rows on a background thread; ``tick()`` asks for a pass now."""

    def __init__(
        self,
        engine: Engine,
        sinks: Sequence[AlertSink],
        alerts: AlertSource,
        *,
        policy: RetryPolicy = DEFAULT_RETRY,
        poll_seconds: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.sinks = list(sinks)
        self.alerts = alerts
        self.policy = policy
        self.poll_seconds = poll_seconds
        self.clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._down: dict[str, float] = {}  # sink -> when its warning was last logged
        self.passes = 0
        self.passed = threading.Condition()

    def tick(self) -> None:
        """Ask for a pass as soon as possible (never blocks: the watcher's tick hook)."""
        self._wake.set()

    def on_alert(self, conn: Connection, alert: Alert) -> None:
        """The watcher's ``on_alert`` hook: enqueue in the alert's own transaction."""
        enqueue(conn, alert, self.sinks)

    def run_once(self) -> DeliveryReport:
        """One pass now, on the caller's thread, with the unreachable-sink log lines."""
        report = deliver_due(self.engine, self.sinks, self.clock(), alerts=self.alerts, policy=self.policy,
                             clock=self.clock)  # fmt: skip
        self._report(report)
        return report

    def _report(self, report: DeliveryReport) -> None:
        now = self.clock()
        for sink, error in report.failed.items():
            last = self._down.get(sink)
            if last is None or now - last >= REPEAT_WARNING_SECONDS:
                pending = next((b.pending for b in backlog(self.engine, now) if b.sink == sink), 0)
                log.warning("alert_sink_unreachable", sink=sink, error=error, pending=pending)
                self._down[sink] = now
        for key in report.delivered:
            sink = key.rsplit("/", 1)[1]
            if self._down.pop(sink, None) is not None:
                log.info("alert_sink_recovered", sink=sink)

    def start(self) -> None:
        """Start the thread (a daemon: it never holds a process open)."""
        self._thread = threading.Thread(target=self._run, name="mlwarden-alert-delivery", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                report = self.run_once()
            except MlwardenError as exc:
                log.warning("alert_outbox_unavailable", error=exc.message)
                report = None
            except Exception as exc:  # the loop outlives any one pass; rows stay for the next
                log.error("alert_delivery_pass_failed", error=type(exc).__name__)
                report = None
            with self.passed:
                self.passes += 1
                self.passed.notify_all()
            if report is not None and len(report.delivered) + len(report.refused) >= self.policy.batch:
                self._wake.set()  # a full batch: more may be due

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current pass, close the sinks."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for sink in self.sinks:
            sink.close()


@dataclass(frozen=True, slots=True)
class WatcherHooks:
    """What the watcher needs from delivery: ``on_alert`` in the alert's transaction, ``tick`` each loop."""

    on_alert: Callable[[Connection, Alert], None]
    tick: Callable[[], None]
    close: Callable[[], None]


def watcher_hooks(loop: DeliveryLoop) -> WatcherHooks:
    """Start ``loop``; give the watcher ``on_alert=hooks.on_alert`` and ``tick_hooks.append(hooks.tick)``."""
    loop.start()
    return WatcherHooks(on_alert=loop.on_alert, tick=loop.tick, close=loop.stop)
