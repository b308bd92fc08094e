"""Gate ``approvals``: N approvals by persons other than the registrant (four eyes).

Approvals are authenticated principals (an OS account ``local:<user>``, an API token
``token:<id>``, an mTLS identity, or ``key:<name>`` for a statement signed with a listed
approver's key). ``ctx.persons`` maps principals to persons (the policy's ``approvers``
with their ``accounts``), so one person's key and account count once, and never when that
person registered the model.
"""

from __future__ import annotations

from typing import Any

from mlwarden.gates.interface import FAIL, PASS, GateContext, GateResult


class ApprovalsGate:
    name = "approvals"

    def run(self, ctx: GateContext, config: dict[str, Any]) -> GateResult:
        required = int(config.get("required", 1))
        registrant = ctx.candidate.registrant
        registrant_person = ctx.persons.get(registrant, registrant) if registrant is not None else None
        by_person: dict[str, str] = {}
        self_approved = False
        for principal in sorted(set(ctx.approvals)):
            person = ctx.persons.get(principal, principal)
            if person == registrant_person:
                self_approved = True
            else:
                by_person.setdefault(person, principal)
        independent = sorted(by_person.values())
        measured = {"approvals": independent, "self_approval_ignored": self_approved}
        thresholds = {"required": required, "excluding": registrant}
        if len(independent) < required:
            extra = " (the registrant's own approval does not count)" if self_approved else ""
            return GateResult(
                self.name,
                FAIL,
                f"{len(independent)} of {required} approval(s) from someone other than "
                f"{_registrant(registrant)}{extra}",
                measured,
                thresholds,
            )
        return GateResult(self.name, PASS, f"approved by {', '.join(independent)}", measured, thresholds)


def _registrant(registrant: str | None) -> str:
    if registrant is None:
        return "the registrant (unknown here: `gate check` takes it with --registrant)"
    return f"the registrant {registrant}"
