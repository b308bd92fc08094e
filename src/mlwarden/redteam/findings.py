"""What a red-team suite reports: findings (a defence that did not hold), checks, metrics and chart data."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class FindingSeverity(StrEnum):
    """How bad a finding is (ordered: low < medium < high)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        """0 for low, 1 for medium, 2 for high."""
        return list(FindingSeverity).index(self)


class CheckStatus(StrEnum):
    """The outcome of one probe: the defence held, did not hold, or could not be checked from here."""

    PASSED = "passed"
    FAILED = "failed"
    NOT_CHECKED = "not_checked"


@dataclass(frozen=True, slots=True)
class Finding:
    """A defence that did not hold.

    ``id`` is stable across runs (``<suite>.<probe>``, e.g. ``access.expired-token-accepted``): a
    baseline compares runs by it. ``evidence`` is JSON-able and never holds a secret (no token, no
    raw personal data). ``remedy`` says what to change.
    """

    id: str
    suite: str
    severity: FindingSeverity
    title: str
    evidence: dict[str, Any]
    remedy: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "suite": self.suite, "severity": self.severity.value, "title": self.title,
                "evidence": self.evidence, "remedy": self.remedy}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Check:
    """One probe a suite ran, whatever its outcome (the JUnit test cases and the report's tables).

    ``id`` is the probe's stable id; a failed check has a :class:`Finding` with the same ``id``.
    """

    id: str
    title: str
    status: CheckStatus
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "status": self.status.value, "detail": self.detail}


ChartPoint = dict[str, float]
"""One point of a chart: e.g. ``{"queries": 500, "fidelity": 0.91}`` or ``{"bin": 0.05, "count": 12}``."""


@dataclass(frozen=True, slots=True)
class SuiteResult:
    """Everything one suite reports.

    ``metrics``: JSON-able measurements (success rate, AUC, fidelity...). ``queries``: requests the
    suite sent to the target. ``charts``: name -> points for the HTML report; the report draws
    ``extraction_fidelity`` (points ``{"queries", "fidelity"}``, a line) and
    ``evasion_perturbation`` (points ``{"bin", "count"}``, a histogram), any other name as a line of
    its points' first two keys.
    """

    suite: str
    findings: list[Finding]
    metrics: dict[str, Any] = field(default_factory=dict)
    queries: int = 0
    seconds: float = 0.0
    charts: dict[str, list[ChartPoint]] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "suite": self.suite, "findings": [f.to_json() for f in self.findings], "metrics": self.metrics,
            "queries": self.queries, "seconds": round(self.seconds, 3), "charts": self.charts,
            "checks": [c.to_json() for c in self.checks],
        }  # fmt: skip
