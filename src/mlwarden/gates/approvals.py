"""Gate ``approvals``: N approvals by principals other than the registrant (four eyes)."""

from __future__ import annotations

from typing import Any

from mlwarden.gates.interface import FAIL, PASS, GateContext, GateResult


class ApprovalsGate:
    name = "approvals"

    def run(self, ctx: GateContext, config: dict[str, Any]) -> GateResult:
        required = int(config.get("required", 1))
        registrant = ctx.candidate.registrant
        independent = sorted({a for a in ctx.approvals if a != registrant})
        self_approved = registrant in ctx.approvals
        measured = {"approvals": independent, "self_approval_ignored": self_approved}
        thresholds = {"required": required, "excluding": registrant}
        if len(independent) < required:
            extra = " (the registrant's own approval does not count)" if self_approved else ""
            return GateResult(
                self.name,
                FAIL,
                f"{len(independent)} of {required} approval(s) from someone other than "
                f"the registrant {registrant}{extra}",
                measured,
                thresholds,
            )
        return GateResult(self.name, PASS, f"approved by {', '.join(independent)}", measured, thresholds)
