"""Watcher metrics for ``/metrics``, read from the database (the watcher runs in its own process)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from mlwarden.errors import MlwardenError
from mlwarden.monitor.watcher import CURSOR
from mlwarden.store.schema import alerts, watch_cursors
from mlwarden.workspace import Workspace


class WatchCollector(Collector):
    """``mlwarden_alerts_raised_total{rule,severity}``, ``mlwarden_watch_entries_processed_total``, lag."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def collect(self) -> Iterator[Metric]:
        raised = CounterMetricFamily("mlwarden_alerts_raised", "Alerts raised by rule and severity",
                                     labels=["rule", "severity"])  # fmt: skip
        processed = CounterMetricFamily("mlwarden_watch_entries_processed", "Ledger entries the watcher processed")
        lag = GaugeMetricFamily("mlwarden_watch_lag_entries", "Ledger entries not yet processed by the watcher")
        try:
            with self.ws.engine.connect() as conn:
                rows = conn.execute(
                    select(alerts.c.rule, alerts.c.severity, func.count()).group_by(alerts.c.rule, alerts.c.severity)
                ).all()
                cursor = conn.execute(select(watch_cursors.c.next_index).where(watch_cursors.c.name == CURSOR)).scalar()
            size = self.ws.log.size()
        except (SQLAlchemyError, MlwardenError):
            return
        for rule, severity, count in rows:
            raised.add_metric([str(rule), str(severity)], float(count))
        processed.add_metric([], float(cursor or 0))
        lag.add_metric([], float(max(0, size - int(cursor or 0))))
        yield from (raised, processed, lag)


def watch_exposition(ws: Workspace) -> bytes:
    """The watcher's metrics in the Prometheus text format."""
    registry = CollectorRegistry()
    registry.register(WatchCollector(ws))
    return generate_latest(registry)
