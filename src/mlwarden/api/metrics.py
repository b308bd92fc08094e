"""Prometheus metrics for one gateway process (its own registry, so tests can build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class GatewayMetrics:
    """Requests, denials, rejections, latency, ledger size and ledger outages."""

    def __init__(self) -> None:
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
        self.ledger_size = Gauge("mlwarden_ledger_entries", "Entries in the ledger", registry=self.registry)
