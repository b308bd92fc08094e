"""Made-up red-team results for the report tests: a pass, findings of each severity, charts, a secret to scrub."""

from __future__ import annotations

from mlwarden.redteam.findings import Check, CheckStatus, Finding, FindingSeverity, SuiteResult
from mlwarden.redteam.run import RunReport

SECRET = "mlw_0123456789abcdef_" + "S" * 43
SHA = "ab" * 32


def finding(probe: str, severity: FindingSeverity, suite: str = "access") -> Finding:
    return Finding(f"{suite}.{probe}", suite, severity, f"probe {probe}", {"reply": {"status": 200}, "seen": SECRET},
                   "fix it")  # fmt: skip


def report(*findings: Finding, fail_on: FindingSeverity = FindingSeverity.HIGH) -> RunReport:
    checks = [Check(f.id, f.title, CheckStatus.FAILED, f.severity.value) for f in findings]
    checks += [Check("access.no-token", "no token", CheckStatus.PASSED, "refused with 401"),
               Check("access.expired-token", "expired", CheckStatus.NOT_CHECKED, "none given")]  # fmt: skip
    access = SuiteResult("access", [f for f in findings if f.suite == "access"], {"probes": len(checks)},
                         seconds=1.5, checks=checks)  # fmt: skip
    extraction = SuiteResult(
        "extraction", [f for f in findings if f.suite == "extraction"],
        {"fidelity": float("nan")}, queries=700, seconds=2.0,
        charts={"extraction_fidelity": [{"queries": 100, "fidelity": 0.6}, {"queries": 500, "fidelity": 0.9}],
                "evasion_perturbation": [{"bin": 0.0, "count": 3}, {"bin": 0.05, "count": 7}]},
        checks=[Check("extraction.fidelity", "surrogate fidelity", CheckStatus.PASSED, "0.9")],
    )  # fmt: skip
    return RunReport(url="http://127.0.0.1:9", model="bc", version=1, sha256=SHA, suites=[access, extraction],
                     fail_on=fail_on, started="2026-11-26T00:00:00Z", seconds=3.5, queries=700)  # fmt: skip
