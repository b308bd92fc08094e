"""Input retention: erase prediction inputs older than ``privacy.inputs_retention_days`` (a lease-holder duty).

Outputs and decision facts stay. Each run that destroys keys appends one ``privacy.erased``
entry (``what: retention``, its cut-off day, the count and a digest of the key ids); a run
with nothing to expire writes nothing. Runs are idempotent, so the duty needs no fence.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from mlwarden.ledger.duties import Duty, DutyRunner
from mlwarden.store.lease import LeaseTerm
from mlwarden.subjects.erasure import expire_old_inputs
from mlwarden.subjects.privacy_policy import load_privacy_policy
from mlwarden.workspace import Workspace

log = structlog.get_logger("mlwarden.retention")

RETENTION_INTERVAL_S = 3600.0
"""How often the lease holder applies the retention limit (keys are per UTC day: hourly is plenty)."""
PRINCIPAL = "system:retention"


def apply_retention(ws: Workspace, *, now: datetime | None = None, principal: str = PRINCIPAL) -> dict[str, Any]:
    """Apply the policy's retention limit now; what was erased (``keys_destroyed`` 0 when nothing expired)."""
    policy = load_privacy_policy(ws.options.paths.policy)
    days = policy.inputs_retention_days
    if days is None:
        return {"inputs_retention_days": None, "keys_destroyed": 0}
    record = expire_old_inputs(ws, inputs_retention_days=days, principal=principal, now=now)
    if record is None:
        return {"inputs_retention_days": days, "keys_destroyed": 0}
    log.info("inputs_expired", keys_destroyed=record["keys_destroyed"], ledger_index=record["ledger_index"])
    return {"inputs_retention_days": days, **record}


def retention_duty(ws: Workspace) -> Duty:
    """The duty the writer lease's holder runs every :data:`RETENTION_INTERVAL_S` seconds."""

    def run(_term: LeaseTerm) -> None:
        apply_retention(ws)

    return run


def register_retention(runner: DutyRunner, ws: Workspace, every: float = RETENTION_INTERVAL_S) -> None:
    """Add the retention duty to a gateway's duty runner."""
    runner.register("privacy.retention", every, retention_duty(ws))
