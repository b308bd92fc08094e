"""Approvals and releases signed with a person's own key: sign, verify against the policy, record refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mlwarden.errors import InvalidInput, VerificationError
from mlwarden.gates.interface import GateContext
from mlwarden.identity.approvers import KEY_PRINCIPAL, Approver, Approvers, load_approvers
from mlwarden.identity.statements import (
    MODEL_APPROVE,
    SignedStatement,
    new_statement,
    sign_statement,
    signer_of,
    verify_statement,
)
from mlwarden.workspace import Workspace

DEFAULT_VALIDITY = timedelta(days=30)


def workspace_approvers(ws: Workspace) -> Approvers:
    """The ``approvers:`` of the workspace policy."""
    return load_approvers(ws.options.paths.policy)


def sign_model_approval(
    key: Ed25519PrivateKey,
    approvers: Approvers,
    *,
    name: str,
    version: int,
    sha256: str,
    comment: str | None = None,
    valid_for: timedelta | None = DEFAULT_VALIDITY,
) -> SignedStatement:
    """A ``model.approve`` statement for exactly this version's bytes, signed by a listed approver's key."""
    approver = signer_of(key, approvers)
    extra: dict[str, Any] = {"comment": comment} if comment else {}
    statement = new_statement(
        MODEL_APPROVE, approver.name, datetime.now(UTC), valid_for, model=name, version=version, sha256=sha256, **extra
    )
    return sign_statement(statement, key)


def model_expectation(name: str, version: int, sha256: str) -> dict[str, Any]:
    """What a ``model.approve`` statement must say to approve this version."""
    return {"action": MODEL_APPROVE, "model": name, "version": version, "sha256": sha256}


def artifact_expectation(sha256: str) -> dict[str, Any]:
    """What a ``model.approve`` statement must say to approve a model file (CI): its bytes, by sha256."""
    return {"action": MODEL_APPROVE, "sha256": sha256}


def add_signed_approvals(
    ctx: GateContext, approvers: Approvers, statements: list[SignedStatement], *, expected: dict[str, Any]
) -> None:
    """Count signed approvals in a gate run (CI) after verifying each; one that does not verify is an error."""
    for signed in statements:
        approver = verify_statement(signed, approvers, expected=expected, now=datetime.now(UTC))
        ctx.approvals.append(approver.principal)
    for principal in [*ctx.approvals, ctx.candidate.registrant]:
        if principal is not None:
            ctx.persons[principal] = approvers.person_of(principal)


def check_or_record_refusal(
    ws: Workspace,
    signed: SignedStatement,
    approvers: Approvers,
    *,
    expected: dict[str, Any],
    kind: str,
    subject: str,
    submitted_by: str,
) -> Approver:
    """Verify a signed statement now; a refusal is recorded (``kind``) before it is raised."""
    try:
        return verify_statement(signed, approvers, expected=expected, now=datetime.now(UTC))
    except VerificationError as exc:
        record_refusal(ws, kind=kind, subject=subject, submitted_by=submitted_by, reason=exc.message, signed=signed)
        raise


def record_refusal(
    ws: Workspace, *, kind: str, subject: str, submitted_by: str, reason: str, signed: SignedStatement | None = None
) -> None:
    """Record why a signed approval or release was refused (the statement kept for review)."""
    body: dict[str, Any] = {"reason": reason}
    if signed is not None:
        body["statement"] = signed.to_json()
    ws.log.append(kind=kind, subject=subject, body=body, principal=submitted_by)


def verified_key_approvals(
    ws: Workspace, approvers: Approvers, *, name: str, version: int, sha256: str, principals: list[str]
) -> set[str]:
    """Which ``key:<name>`` approvals still verify: a recorded statement, by a listed key, for these bytes."""
    wanted = {p for p in principals if p.startswith(KEY_PRINCIPAL)}
    if not wanted:
        return set()
    subject, found = f"model:{name}:{version}", set()
    expected = model_expectation(name, version, sha256)
    for stored in ws.log.find("model.approved", subject, limit=1000):
        entry = stored.parse()
        raw = entry.body.get("statement")
        if entry.subject != subject or entry.principal not in wanted or raw is None:
            continue
        try:
            signed = SignedStatement.from_json(raw)
            approver = verify_statement(signed, approvers, expected=expected, now=None)
        except (InvalidInput, VerificationError):
            continue
        if approver.principal == entry.principal:
            found.add(entry.principal)
    return found
