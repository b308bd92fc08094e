"""Prometheus gauges for the alert outbox, read from the database at scrape time (so every worker agrees)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from mlwarden.errors import StoreError
from mlwarden.monitor.outbox import backlog


class OutboxCollector(Collector):
    """``mlwarden_outbox_pending``, ``…_oldest_pending_seconds``, ``…_failed_attempts``, ``…_refused`` by sink."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One family per figure; nothing when the database does not answer (the ledger metrics say so)."""
        families = {
            "pending": GaugeMetricFamily(
                "mlwarden_outbox_pending", "Alert deliveries waiting in the outbox", labels=["sink"]
            ),
            "oldest": GaugeMetricFamily(
                "mlwarden_outbox_oldest_pending_seconds",
                "Age of the oldest alert delivery still waiting",
                labels=["sink"],
            ),
            "failed": GaugeMetricFamily(
                "mlwarden_outbox_failed_attempts",
                "Failed delivery attempts of the alert deliveries still waiting",
                labels=["sink"],
            ),
            "refused": GaugeMetricFamily(
                "mlwarden_outbox_refused",
                "Outbox rows refused because the ledger does not back them",
                labels=["sink"],
            ),
        }
        try:
            rows = backlog(self.engine, self.clock())
        except StoreError:
            return
        for row in rows:
            families["pending"].add_metric([row.sink], row.pending)
            families["oldest"].add_metric([row.sink], row.oldest_pending_seconds)
            families["failed"].add_metric([row.sink], row.failed_attempts)
            families["refused"].add_metric([row.sink], row.refused)
        yield from families.values()
