"""Prometheus metrics for the gateway: one registry per app, or shared files across workers.

With one worker, each app keeps its own registry (so tests can build many apps). With several
workers, ``mlwarden serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before the workers start:
prometheus_client then keeps every value in per-process files there, and ``/metrics`` adds up
all workers' files (:class:`prometheus_client.multiprocess.MultiProcessCollector`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

__all__ = ["CONTENT_TYPE_LATEST", "MULTIPROC_ENV", "GatewayMetrics", "reset_multiprocess_dir"]


def reset_multiprocess_dir(path: Path) -> None:
    """Create ``path`` and remove the value files a previous run left there (stale counts, dead pids)."""
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()


class GatewayMetrics:
    """Requests, denials, rejections, latency, ledger size and ledger outages."""

    def __init__(self, *, multiprocess_dir: Path | None = None) -> None:
        if multiprocess_dir is None and os.environ.get(MULTIPROC_ENV):
            multiprocess_dir = Path(os.environ[MULTIPROC_ENV])
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry()
        self.requests = Counter("mlwarden_requests_total", "HTTP requests", ["route", "status"], registry=self.registry)
        self.denials = Counter(
            "mlwarden_denials_total", "Requests denied by policy or authentication", ["reason"], registry=self.registry
        )
        self.latency = Histogram(
            "mlwarden_request_seconds", "Request latency", ["route"], registry=self.registry,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )  # fmt: skip
        self.predictions = Counter("mlwarden_predictions_total", "Rows predicted", ["model"], registry=self.registry)
        self.ledger_outages = Counter(
            "mlwarden_ledger_outages_total",
            "Requests refused because the ledger could not record",
            registry=self.registry,
        )
        # Every worker reads the same ledger: report the largest size any live worker saw.
        self.ledger_size = Gauge(
            "mlwarden_ledger_entries", "Entries in the ledger", registry=self.registry, multiprocess_mode="livemax"
        )

        self._collectors: list[Collector] = []  # read at scrape time from shared state (the database)

        # Label children, bound on first use and kept: ``.labels(...)`` costs a lock and a tuple per call.
        self._children: dict[tuple[str, ...], Any] = {}

    def denied(self, reason: str) -> Counter:
        """The denial counter for ``reason``."""
        return self._child(("denied", reason), self.denials, reason)  # type: ignore[no-any-return]

    def predicted(self, model: str) -> Counter:
        """The count of rows predicted by ``model``."""
        return self._child(("predicted", model), self.predictions, model)  # type: ignore[no-any-return]

    def answered(self, route: str, status: int) -> tuple[Counter, Histogram]:
        """The request counter for (``route``, ``status``) and the latency histogram for ``route``."""
        key = ("answered", route, str(status))
        pair = self._children.get(key)
        if pair is None:
            pair = (self.requests.labels(route=route, status=str(status)), self.latency.labels(route=route))
            self._children[key] = pair
        return pair

    def _child(self, key: tuple[str, ...], metric: Counter, value: str) -> Any:
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(value)
        return child

    def add_collector(self, collector: Collector) -> None:
        """Export ``collector``'s metrics too (in multiprocess mode as well: it reads shared state itself)."""
        self._collectors.append(collector)
        self.registry.register(collector)

    def exposition(self) -> bytes:
        """The text format for ``/metrics``: this process's registry, or every worker's files added up."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        combined = CollectorRegistry()
        MultiProcessCollector(combined, path=str(self.multiprocess_dir))  # type: ignore[no-untyped-call]
        for collector in self._collectors:
            combined.register(collector)
        return generate_latest(combined)
