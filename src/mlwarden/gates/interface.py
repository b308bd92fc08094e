"""What every gate is: a name, a run over the evidence, and a result a reviewer can read."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import polars as pl

from mlwarden.registry.cards import ModelCard
from mlwarden.runtime.runtime_policy import RuntimePolicy
from mlwarden.runtime.signature import InputSignature

PASS = "pass"  # noqa: S105 - a gate status, not a password
FAIL = "fail"
ERROR = "error"


@dataclass(frozen=True, slots=True)
class GateResult:
    """One gate's verdict, the values it measured, the thresholds it used, and its evidence hashes."""

    gate: str
    status: str
    message: str
    measured: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "status": self.status,
            "message": self.message,
            "measured": self.measured,
            "thresholds": self.thresholds,
            "evidence": self.evidence,
            "details": self.details,
        }


@dataclass(frozen=True, slots=True)
class Waiver:
    """An accepted risk: one finding id, why, until when, and who approved it."""

    finding_id: str
    reason: str
    expires: datetime
    approver: str


@dataclass(frozen=True, slots=True)
class Candidate:
    """A model version as the gates see it (registered, or a bare artifact in CI)."""

    name: str
    version: int | None
    sha256: str
    format: str | None
    artifact: bytes
    filename: str
    card: ModelCard | None = None
    registrant: str | None = None
    attestation_ok: bool | None = None
    signature: InputSignature | None = None
    """The registered input signature (a signature file may have renamed the model's features)."""


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Evaluation data (never the model's self-reported numbers)."""

    frame: pl.DataFrame
    sha256: str
    source: str


@dataclass(slots=True)
class GateContext:
    """Everything gates may look at. Missing evidence makes a gate answer ``error``, never ``pass``."""

    candidate: Candidate
    now: datetime
    evaluation: Evaluation | None = None
    production: Candidate | None = None
    known_datasets: dict[str, set[str]] | None = None
    reports: list[tuple[str, bytes, str]] = field(default_factory=list)
    approvals: list[str] = field(default_factory=list)
    waivers: list[Waiver] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)
    # principal -> the person it belongs to (policy `approvers`); a principal not listed is its own person
    persons: dict[str, str] = field(default_factory=dict)
    # what model files may use beyond the defaults (policy `runtime:`: ONNX domains, skops types)
    runtime: RuntimePolicy = field(default_factory=RuntimePolicy)
    # verified ``redteam.run`` ledger entries about this model (entry JSON: index, time, body...), newest first
    redteam_runs: list[dict[str, Any]] = field(default_factory=list)


class Gate(Protocol):
    """One gate module: ``name`` and ``run``."""

    name: str

    def run(self, ctx: GateContext, config: dict[str, Any]) -> GateResult: ...
