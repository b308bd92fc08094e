"""The gate report names the production version it compared against, or says there is none."""

from __future__ import annotations

from mlwarden.gates.interface import GateResult
from mlwarden.gates.reports import html_report


def _performance(production_version: int | None) -> GateResult:
    production = {"accuracy": 0.9} if production_version is not None else {}
    return GateResult(
        "performance", "pass", "accuracy 0.93", measured={"accuracy": 0.93},
        details={"production": production, "production_version": production_version},
    )  # fmt: skip


def test_report_without_production_version_says_so() -> None:
    """No production version: "no production version", never "production vNone"."""
    page = html_report([_performance(None)], "toy:1")
    assert "vNone" not in page
    assert "None" not in page
    assert "no production version" in page


def test_report_names_the_production_version() -> None:
    """A production version: the heading names it and the production column holds its figures."""
    page = html_report([_performance(3)], "toy:4")
    assert "candidate vs production v3" in page
    assert "0.9000" in page
