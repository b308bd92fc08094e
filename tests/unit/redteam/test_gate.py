"""The ``redteam`` gate: a recent recorded run against exactly this sha256, with nothing at or above fail_on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mlwarden.gates.interface import Candidate, GateContext
from mlwarden.gates.redteam import RedTeamGate
from mlwarden.gates.runner import GATES, parse_gate_policy

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SHA = "cd" * 32


def _run(index: int, *, sha: str = SHA, age: timedelta = timedelta(hours=1), **counts: Any) -> dict[str, Any]:
    findings = {"low": 0, "medium": 0, "high": 0} | counts
    when = (NOW - age).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"index": index, "kind": "redteam.run", "time": when, "principal": "local:ci", "subject": "model:bc:2",
            "body": {"sha256": sha, "findings": findings}}  # fmt: skip


def _gate(runs: list[dict[str, Any]], **config: Any) -> tuple[str, str]:
    candidate = Candidate(name="bc", version=2, sha256=SHA, format="onnx", artifact=b"", filename="m.onnx")
    result = RedTeamGate().run(GateContext(candidate=candidate, now=NOW, redteam_runs=runs), config)
    return result.status, result.message


def test_a_recent_clean_run_against_this_sha256_passes() -> None:
    """Low and medium findings do not block at the default fail_on high."""
    status, message = _gate([_run(10, low=3, medium=1)])
    assert status == "pass"
    assert "ledger entry 10" in message


@pytest.mark.parametrize(
    ("runs", "config", "why"),
    [
        ([], {}, "none for this sha256"),
        ([_run(10, sha="ef" * 32)], {}, "none for this sha256"),
        ([_run(10, age=timedelta(days=8))], {}, "none in the last 7 days"),
        ([_run(10, age=timedelta(days=2))], {"max_age_days": 1}, "none in the last 1 days"),
        ([_run(10, high=1)], {}, "1 finding(s) at or above high"),
        ([_run(10, medium=2)], {"fail_on": "medium"}, "2 finding(s) at or above medium"),
        ([_run(10, high="0")], {}, "1 finding(s) at or above high"),
    ],
    ids=["no-run", "other-sha256", "too-old", "older-than-configured", "high-finding", "medium-at-medium",
         "malformed-count"],
)  # fmt: skip
def test_the_gate_fails_without_a_fitting_run(runs: list[dict[str, Any]], config: dict[str, Any], why: str) -> None:
    """Each missing or failing condition fails the gate, saying which."""
    status, message = _gate(runs, **config)
    assert status == "fail"
    assert why in message


def test_the_latest_run_decides() -> None:
    """A clean run recorded after a failing one passes; the reverse fails."""
    assert _gate([_run(5, high=2), _run(9)])[0] == "pass"
    assert _gate([_run(9, high=2), _run(5)])[0] == "fail"


def test_an_unknown_fail_on_is_an_error_not_a_pass() -> None:
    """A misconfigured gate answers error."""
    assert _gate([_run(1)], fail_on="critical")[0] == "error"


def test_the_gate_is_registered_and_a_policy_can_require_it() -> None:
    """``redteam`` is a known gate name for policy.yaml stages."""
    assert "redteam" in GATES
    policy = parse_gate_policy({"stages": {"production": {"gates": ["redteam"]}}, "gates": {"redteam": {}}})
    assert policy.gates_for("production") == ["redteam"]
