"""One red-team run: the chosen suites against one target, the verdict, and the report it leaves."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlwarden.errors import MlwardenError
from mlwarden.redteam.findings import Check, CheckStatus, Finding, FindingSeverity, SuiteResult
from mlwarden.redteam.suites import UNAVAILABLE, SuiteOptions, load_suites
from mlwarden.redteam.target import Target, TargetUnreachable

REPORT_FORMAT = "mlwarden.redteam.report/v1"

Progress = Callable[[str, SuiteResult | None], None]
"""Called with a suite's name before it runs (None) and after (its result)."""


@dataclass(slots=True)
class RunReport:
    """What a run found, against what, and whether it passes."""

    url: str
    model: str
    version: Any
    sha256: Any
    suites: list[SuiteResult]
    fail_on: FindingSeverity
    started: str
    seconds: float
    queries: int
    regressions: list[str] = field(default_factory=list)
    baseline: str | None = None
    requests: int = 0

    @property
    def findings(self) -> list[Finding]:
        return [f for s in self.suites for f in s.findings]

    def by_severity(self) -> dict[str, int]:
        counts = {s.value: 0 for s in FindingSeverity}
        for finding in self.findings:
            counts[finding.severity.value] += 1
        return counts

    def blocking(self) -> list[Finding]:
        """Findings at or above ``fail_on``."""
        return [f for f in self.findings if f.severity.rank >= self.fail_on.rank]

    @property
    def passed(self) -> bool:
        return not self.blocking() and not self.regressions

    def to_json(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "target": {"url": self.url, "model": self.model, "version": self.version, "sha256": self.sha256},
            "started": self.started, "seconds": round(self.seconds, 3), "queries": self.queries,
            "requests": self.requests, "fail_on": self.fail_on.value, "verdict": "pass" if self.passed else "fail",
            "findings_by_severity": self.by_severity(), "regressions": self.regressions, "baseline": self.baseline,
            "suites": [s.to_json() for s in self.suites],
        }  # fmt: skip


def _run_one(name: str, target: Target, options: SuiteOptions) -> SuiteResult:
    """One suite; a suite that cannot run is "not checked", one that breaks is a finding (never a pass)."""
    started = time.monotonic()
    suite = load_suites().get(name)
    if suite is None:
        why = UNAVAILABLE.get(name, "not installed")
        check = Check(f"{name}.run", f"suite {name}", CheckStatus.NOT_CHECKED, why)
        return SuiteResult(name, [], {"error": why}, seconds=0.0, checks=[check])
    try:
        return suite(target, options)
    except TargetUnreachable:
        raise
    except MlwardenError as exc:
        check = Check(f"{name}.run", f"suite {name}", CheckStatus.NOT_CHECKED, exc.message)
        return SuiteResult(name, [], {"error": exc.message}, seconds=time.monotonic() - started, checks=[check])
    except Exception as exc:  # a crashing suite must not read as a pass
        detail = f"{type(exc).__name__}: {str(exc)[:200]}"
        finding = Finding(f"{name}.crashed", name, FindingSeverity.MEDIUM, f"suite {name} crashed", {"error": detail},
                          "investigate: the suite could not finish, so its defences are unproven")  # fmt: skip
        check = Check(finding.id, finding.title, CheckStatus.FAILED, detail)
        return SuiteResult(name, [finding], {"error": detail}, seconds=time.monotonic() - started, checks=[check])


def run_suites(
    target: Target,
    options: SuiteOptions,
    names: list[str],
    *,
    fail_on: FindingSeverity = FindingSeverity.HIGH,
    progress: Progress | None = None,
) -> RunReport:
    """Run ``names`` in order against ``target``; :class:`TargetUnreachable` ends the run."""
    started = datetime.now(UTC)
    clock = time.monotonic()
    results = []
    for name in names:
        if progress is not None:
            progress(name, None)
        result = _run_one(name, target, options)
        results.append(result)
        if progress is not None:
            progress(name, result)
    if not target.served:
        _learn_version(target, options)
    return RunReport(
        url=target.base_url, model=target.model, version=target.served.get("version"),
        sha256=target.served.get("sha256"), suites=results, fail_on=fail_on,
        started=started.strftime("%Y-%m-%dT%H:%M:%SZ"), seconds=time.monotonic() - clock, queries=target.queries,
        requests=target.requests,
    )  # fmt: skip


def _learn_version(target: Target, options: SuiteOptions) -> None:
    """One prediction, to learn which version (and sha256) answered: the report is about that artifact."""
    row = options.sample_row()
    if row is None or target.remaining < 1:
        return
    try:
        target.predict([row])
    except MlwardenError:
        return  # the report then names no version, and the gate will not accept it


def regressions(current: RunReport, baseline: dict[str, Any]) -> list[str]:
    """Ids of findings in ``current`` that the baseline report did not have."""
    before = {
        str(f.get("id"))
        for s in baseline.get("suites", [])
        if isinstance(s, dict)
        for f in s.get("findings", [])
        if isinstance(f, dict)
    }
    return sorted({f.id for f in current.findings} - before)
