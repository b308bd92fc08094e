"""Gate ``redteam``: a recorded red-team run against exactly this artifact, recent, with no blocking finding.

The runs come from verified ``redteam.run`` ledger entries (``ctx.redteam_runs``), recorded by
``mlwarden redteam run --home`` or imported by ``mlwarden redteam record``; a run against another
sha256 (even another build of the same version) does not count.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from mlwarden.gates.figures import finite
from mlwarden.gates.interface import FAIL, PASS, GateContext, GateResult

SEVERITIES = ("low", "medium", "high")


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _blocking(findings: Any, fail_on: str) -> int:
    """Findings at or above ``fail_on`` in a run's counts by severity (malformed counts block)."""
    if not isinstance(findings, dict):
        return 1
    at = SEVERITIES.index(fail_on)
    total = 0
    for severity in SEVERITIES[at:]:
        count = findings.get(severity, 0)
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            return 1
        total += count
    return total


class RedTeamGate:
    name = "redteam"

    def run(self, ctx: GateContext, config: dict[str, Any]) -> GateResult:
        max_age = finite("redteam.max_age_days", config.get("max_age_days", 7))
        fail_on = str(config.get("fail_on", "high"))
        if fail_on not in SEVERITIES:
            return GateResult(self.name, "error", f"fail_on must be one of {', '.join(SEVERITIES)}, got {fail_on!r}")
        thresholds = {"max_age_days": max_age, "fail_on": fail_on, "sha256": ctx.candidate.sha256}
        oldest = ctx.now - timedelta(days=max_age)
        matching = [r for r in ctx.redteam_runs if r.get("body", {}).get("sha256") == ctx.candidate.sha256]
        recent = [r for r in matching if (t := _when(r.get("time"))) is not None and t >= oldest]
        measured: dict[str, Any] = {"runs_for_sha256": len(matching), "recent_runs": len(recent)}
        if not recent:
            why = "none for this sha256" if not matching else f"none in the last {max_age:g} days"
            return GateResult(self.name, FAIL, f"no red-team run recorded against this artifact ({why}): run "
                              "`mlwarden redteam run --home` or `mlwarden redteam record REPORT.json`",
                              measured, thresholds)  # fmt: skip
        latest = max(recent, key=lambda r: int(r.get("index", -1)))
        blocking = _blocking(latest["body"].get("findings"), fail_on)
        measured |= {"latest_index": latest.get("index"), "latest_findings": latest["body"].get("findings"),
                     "report_digest": latest["body"].get("report_digest")}  # fmt: skip
        if blocking:
            return GateResult(self.name, FAIL, f"the latest red-team run (ledger entry {latest.get('index')}) has "
                              f"{blocking} finding(s) at or above {fail_on}", measured, thresholds)  # fmt: skip
        return GateResult(self.name, PASS, f"red-team run at ledger entry {latest.get('index')}: nothing at or above "
                          f"{fail_on}", measured, thresholds)  # fmt: skip
