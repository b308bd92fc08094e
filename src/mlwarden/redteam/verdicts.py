"""Judging one probe's answer: refused as it should be (4xx problem+json), or a finding."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlwarden.redteam.findings import Check, CheckStatus, Finding, FindingSeverity
from mlwarden.redteam.target import Reply


@dataclass(slots=True)
class Tally:
    """The checks and findings a suite has collected so far."""

    suite: str
    checks: list[Check] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def passed(self, probe: str, title: str, detail: str = "") -> None:
        self.checks.append(Check(f"{self.suite}.{probe}", title, CheckStatus.PASSED, detail))

    def not_checked(self, probe: str, title: str, why: str) -> None:
        self.checks.append(Check(f"{self.suite}.{probe}", title, CheckStatus.NOT_CHECKED, why))

    def failed(
        self, probe: str, title: str, severity: FindingSeverity, evidence: dict[str, object], remedy: str
    ) -> None:
        probe_id = f"{self.suite}.{probe}"
        self.checks.append(Check(probe_id, title, CheckStatus.FAILED, f"{severity.value}: {remedy}"))
        self.findings.append(Finding(probe_id, self.suite, severity, title, dict(evidence), remedy))

    def refused(
        self,
        probe: str,
        title: str,
        reply: Reply,
        *,
        remedy: str,
        if_accepted: FindingSeverity = FindingSeverity.HIGH,
        expected: tuple[int, ...] | None = None,
    ) -> bool:
        """Record whether ``reply`` refused the probe properly; True when it did.

        Accepted (2xx/3xx): ``if_accepted``. A server error: medium (a crafted request broke the
        server). A 4xx that is not problem+json, or not one of ``expected``: low.
        """
        evidence: dict[str, object] = {"reply": reply.summary()}
        if reply.status == 429:
            self.not_checked(probe, title, "rate-limited before it could be judged (raise --timeout or slow down)")
            return False
        if reply.status < 400:
            self.failed(probe, title, if_accepted, {**evidence, "outcome": "accepted"}, remedy)
        elif reply.status >= 500:
            self.failed(probe, title, FindingSeverity.MEDIUM, {**evidence, "outcome": "server error"},
                        "answer a crafted request with a 4xx problem+json, never a 5xx")  # fmt: skip
        elif not reply.is_problem:
            self.failed(probe, title, FindingSeverity.LOW, {**evidence, "outcome": "not problem+json"},
                        "answer refusals as RFC 9457 application/problem+json")  # fmt: skip
        elif expected is not None and reply.status not in expected:
            self.failed(probe, title, FindingSeverity.LOW, {**evidence, "outcome": "unexpected status",
                        "expected": list(expected)}, f"refuse with {'/'.join(map(str, expected))}")  # fmt: skip
        else:
            self.passed(probe, title, f"refused with {reply.status}")
            return True
        return False
