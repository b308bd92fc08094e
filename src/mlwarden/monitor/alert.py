"""An alert: what a rule raised, from which entries, about whom.

This is the one shape every part of the watcher shares: rules produce it, the
``alert.raised`` ledger entry records it, the outbox delivers it and the SIEM formats
render it. The id is derived from the rule and the evidence, so the same evidence can
never raise the same alert twice, whichever process or restart looks at it.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

ALERT_RAISED = "alert.raised"
"""The ledger kind of a raised alert."""
ALERT_ACKNOWLEDGED = "alert.acknowledged"
"""The ledger kind of an acknowledgement (who, why)."""


class Severity(StrEnum):
    """How urgent an alert is (ordered)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for low up to 3 for critical."""
        return list(Severity).index(self)


def alert_id(rule: str, first_index: int, last_index: int, key: str = "") -> str:
    """A stable id for the alert ``rule`` raised over entries ``first_index..last_index`` (and a grouping key)."""
    digest = hashlib.sha256(f"{rule}\x00{first_index}\x00{last_index}\x00{key}".encode()).hexdigest()
    return f"alrt_{digest[:32]}"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert as raised by a rule (``entry_index`` is set once its ledger entry is committed)."""

    alert_id: str
    rule: str
    severity: Severity
    summary: str
    first_index: int
    last_index: int
    time: str
    """RFC 3339 UTC time of the last evidence entry."""
    principal: str | None = None
    subject: str | None = None
    details: dict[str, Any] | None = None
    """Rule-specific measurements (counts, window, statistics); never secrets or personal data."""
    entry_index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used in the ledger body, the API and the plain JSON sinks."""
        out = asdict(self)
        out["severity"] = self.severity.value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        """The inverse of :meth:`to_dict` (raises ``KeyError``/``ValueError`` on a malformed dict)."""
        return cls(
            alert_id=str(data["alert_id"]),
            rule=str(data["rule"]),
            severity=Severity(data["severity"]),
            summary=str(data["summary"]),
            first_index=int(data["first_index"]),
            last_index=int(data["last_index"]),
            time=str(data["time"]),
            principal=data.get("principal"),
            subject=data.get("subject"),
            details=data.get("details"),
            entry_index=data.get("entry_index"),
        )
