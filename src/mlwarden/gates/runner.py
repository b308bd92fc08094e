"""The gate policy (which gates guard which stage, with what thresholds) and the runner."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from mlwarden.errors import InvalidInput
from mlwarden.gates.approvals import ApprovalsGate
from mlwarden.gates.artifact_safety import ArtifactSafetyGate
from mlwarden.gates.fairness import FairnessGate
from mlwarden.gates.figures import json_safe, unfit_figures
from mlwarden.gates.interface import ERROR, PASS, Gate, GateContext, GateResult, Waiver
from mlwarden.gates.model_card import ModelCardGate
from mlwarden.gates.performance import PerformanceGate
from mlwarden.gates.redteam import RedTeamGate
from mlwarden.gates.vulnerabilities import VulnerabilitiesGate
from mlwarden.identity.approvers import Approvers, parse_approvers
from mlwarden.policy_file import read_policy
from mlwarden.runtime.runtime_policy import RuntimePolicy, parse_runtime_policy

GATES: dict[str, Gate] = {
    g.name: g
    for g in (
        ModelCardGate(),
        PerformanceGate(),
        FairnessGate(),
        ArtifactSafetyGate(),
        VulnerabilitiesGate(),
        ApprovalsGate(),
        RedTeamGate(),
    )
}


@dataclass(frozen=True, slots=True)
class GatePolicy:
    """Gates per stage, their settings, waivers, and the people who may sign approvals."""

    stages: dict[str, list[str]]
    settings: dict[str, dict[str, Any]]
    waivers: list[Waiver]
    approvers: Approvers = field(default_factory=Approvers)
    runtime: RuntimePolicy = field(default_factory=RuntimePolicy)

    def gates_for(self, stage: str) -> list[str]:
        return self.stages.get(stage, [])


def _date(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    try:
        return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidInput(f"waiver expiry {value!r} is not a date") from exc


def parse_gate_policy(raw: dict[str, Any]) -> GatePolicy:
    stages_raw = raw.get("stages") or {}
    if not isinstance(stages_raw, dict):
        raise InvalidInput("policy `stages` must map stage names to {gates: [...]}")
    stages: dict[str, list[str]] = {}
    for stage, spec in stages_raw.items():
        gates = (spec or {}).get("gates", []) if isinstance(spec, dict) else spec
        unknown = [g for g in gates or [] if g not in GATES]
        if unknown:
            raise InvalidInput(f"policy stage {stage}: unknown gate(s) {', '.join(unknown)}; known: {', '.join(GATES)}")
        stages[str(stage)] = list(gates or [])
    settings = {str(k): dict(v or {}) for k, v in (raw.get("gates") or {}).items()}
    waivers = []
    for i, w in enumerate(raw.get("waivers") or []):
        if not isinstance(w, dict) or not all(k in w for k in ("id", "reason", "expires", "approver")):
            raise InvalidInput(f"waiver {i} needs id, reason, expires and approver")
        waivers.append(Waiver(str(w["id"]), str(w["reason"]), _date(w["expires"]), str(w["approver"])))
    runtime = parse_runtime_policy(raw.get("runtime"))
    return GatePolicy(stages, settings, waivers, parse_approvers(raw.get("approvers")), runtime)


def load_gate_policy(path: Path) -> GatePolicy:
    """Read a policy file; a missing file is an error (an empty policy would wave everything through)."""
    return parse_gate_policy(read_policy(path, required=True))


def run_gates(policy: GatePolicy, stage: str, ctx: GateContext) -> list[GateResult]:
    """Run the stage's gates in order; a crashing gate, or one that measured a NaN, infinite or
    missing figure, is an ``error`` result, never a pass."""
    results = []
    ctx = replace(ctx, runtime=policy.runtime)  # the policy that gates also says what model files may use
    for name in policy.gates_for(stage):
        try:
            results.append(fail_safe(GATES[name].run(ctx, policy.settings.get(name, {}))))
        except Exception as exc:  # a gate that breaks must block, and say why
            results.append(GateResult(name, ERROR, f"gate failed to run: {type(exc).__name__}: {str(exc)[:200]}"))
    return results


def fail_safe(result: GateResult) -> GateResult:
    """``result`` made JSON-safe; ``error`` if it measured a figure that is missing, NaN or infinite."""
    unfit = unfit_figures(result.measured)
    safe = replace(
        result,
        measured=json_safe(result.measured),
        thresholds=json_safe(result.thresholds),
        details=json_safe(result.details),
    )
    if not unfit or result.status == ERROR:
        return safe
    names = ", ".join(unfit)
    return replace(safe, status=ERROR, message=f"{names}: NaN, infinite or missing, so the gate cannot decide")


def all_passed(results: list[GateResult]) -> bool:
    return all(r.status == PASS for r in results)


DEFAULT_POLICY = """\
# mlwarden workspace policy.
#
# stages: which gates guard promotion into each stage (candidate -> staging -> production).
# gates:  the settings of each gate. Every gate computes its own evidence: performance and
#         fairness run the model on a registered evaluation dataset, never trusting
#         self-reported numbers.
# waivers: accepted vulnerability findings (id, reason, expires, approver).
# approvers: people who may sign approvals and releases with their own key
#         (`mlwarden keys create --name NAME` prints the line), with their other
#         identities under accounts (local:<os account>, token:<id>); see docs/gates.md.
# spiffe: mTLS identities and what they may do (see docs/gateway.md).
# runtime: skops_trusted_types lists scikit-learn types trusted beyond the built-in
#         allow-list, by full name (see docs/registry.md); the gates record which were used.

stages:
  staging:
    gates: [model_card, artifact_safety]
  production:
    gates: [model_card, artifact_safety, approvals]
    # add: performance, fairness, vulnerabilities (they need `dataset` / attached reports),
    # redteam (a recorded `mlwarden redteam` run against this very artifact)

gates:
  model_card:
    required_metadata: [license, datasets, metrics]
    required_sections: [intended_use, limitations, training_data, evaluation, fairness, owners]
  artifact_safety:
    allowed_formats: [onnx, skops]
  approvals:
    required: 1
  performance:
    # dataset: my-eval-set        # a registered dataset (latest version) with the label column
    label: target
    metrics:
      accuracy: {min: 0.80}
    max_regression:
      accuracy: 0.02
  fairness:
    # dataset: my-eval-set
    label: target
    sensitive: [group]
    max_demographic_parity_difference: 0.10
    max_equalized_odds_difference: 0.20
  vulnerabilities:
    fail_on: high
    unknown_severity_as: high
  redteam:
    max_age_days: 7   # the run must be this recent
    fail_on: high     # and have no finding at or above this severity

waivers: []

approvers: []
#  - {name: alice, key: "ed25519:<base64>", accounts: [local:alice]}

spiffe: []
"""
