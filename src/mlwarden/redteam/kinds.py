"""The red team's ledger vocabulary (the ``redteam`` namespace is reserved for the system)."""

from __future__ import annotations

REDTEAM_RUN = "redteam.run"
"""A red-team run against one model version: suites, findings by severity, the report's digest."""


def run_subject(model: str, version: int) -> str:
    """``model:<name>:<version>``: what a run is about (the same subject promotions use)."""
    return f"model:{model}:{version}"
