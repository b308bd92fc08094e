"""What an attack suite concludes: a severity (None when the defence held), the evidence and what to change."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class FindingSeverity(StrEnum):
    """How bad a finding is (ordered); ``--fail-on`` compares against it."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@dataclass(frozen=True, slots=True)
class AttackFinding:
    """One suite's verdict. ``severity`` None means the attack did not get what it wanted."""

    suite: str
    severity: FindingSeverity | None
    title: str
    remedy: str
    """The rule that set the severity, then what to change; read by people, so it explains itself."""
    evidence: dict[str, Any] = field(default_factory=dict)
