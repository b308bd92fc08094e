"""Read a recorded decision's inputs and outputs: in clear (version 1) or opened against its commitments (v2)."""

from __future__ import annotations

from typing import Any

from mlwarden.errors import IntegrityError
from mlwarden.privacy import Commitment, Erased, Opened, PayloadClaim, Tampered, open_many
from mlwarden.privacy.scopes import FIELDS
from mlwarden.subjects.sealing import ENTRY_VERSION, privacy_ring
from mlwarden.workspace import Workspace


def is_sealed(body: dict[str, Any]) -> bool:
    """Whether a prediction body commits to sealed payloads (version 2) rather than holding them."""
    return body.get("v") == ENTRY_VERSION


def claims(body: dict[str, Any], index: int) -> list[PayloadClaim]:
    """What a verified version-2 prediction entry commits to: one claim per row and field, in row order."""
    ids = body.get("decision_ids")
    out: list[PayloadClaim] = []
    for field in FIELDS:
        hexes = body.get(f"{field}_commitments")
        if not isinstance(ids, list) or not isinstance(hexes, list) or len(hexes) != len(ids):
            raise IntegrityError(f"prediction entry {index} has no {field} commitment per decision", index=index)
        out.extend(PayloadClaim(str(d), field, Commitment.parse(str(h))) for d, h in zip(ids, hexes, strict=True))
    return out


def is_sealed_feedback(body: dict[str, Any]) -> bool:
    """Whether a feedback body commits to a sealed ``expected`` value (version 2) rather than holding it."""
    return body.get("v") == ENTRY_VERSION and isinstance(body.get("expected_commitment"), str)


def feedback_claims(body: dict[str, Any], index: int) -> list[PayloadClaim]:
    """What a verified version-2 feedback entry commits to: its ``expected`` value (none when it gave none)."""
    if body.get("v") != ENTRY_VERSION or body.get("expected_commitment") is None:
        return []
    feedback_id, hexed = body.get("feedback_id"), body.get("expected_commitment")
    if not isinstance(feedback_id, str) or not isinstance(hexed, str):
        raise IntegrityError(f"feedback entry {index} has no feedback id or expected commitment", index=index)
    return [PayloadClaim(feedback_id, "expected", Commitment.parse(hexed))]


def entry_claims(kind: str, body: dict[str, Any], index: int) -> list[PayloadClaim]:
    """The payloads a verified entry commits to: a prediction's rows, or a feedback's expected value."""
    if kind == "feedback":
        return feedback_claims(body, index)
    return claims(body, index) if kind == "prediction" and is_sealed(body) else []


def erasure_index(ws: Workspace, erasure_id: str) -> int | None:
    """The ledger index of the erasure entry ``erasure_id`` (None: no entry records it)."""
    return ws.log.find_ref(erasure_id)


def decision_payloads(ws: Workspace, entry: dict[str, Any], decision_id: str) -> dict[str, Any]:
    """``{"inputs": …, "outputs": …}`` of one decision of a verified prediction entry.

    Version 1 entries hold them in clear. Version 2 payloads are opened and checked against the
    entry's commitments; an erased one reads ``{"erased": true, "erasure_index": n}``; a payload
    that fails its checks raises :class:`IntegrityError` naming the entry.
    """
    position = entry["body"]["decision_ids"].index(decision_id)
    rows = prediction_payloads(ws, entry, only=decision_id)
    return {field: rows[field][0 if is_sealed(entry["body"]) else position] for field in FIELDS}


def prediction_payloads(ws: Workspace, entry: dict[str, Any], *, only: str | None = None) -> dict[str, list[Any]]:
    """Every row's (or decision ``only``'s) inputs and outputs of a verified prediction entry, in row order."""
    body, index = entry["body"], int(entry["index"])
    if not is_sealed(body):
        return {field: list(body.get(field) or []) for field in FIELDS}
    mine = [c for c in claims(body, index) if only is None or c.decision_id == only]
    with ws.engine.connect() as conn:
        results = open_many(conn, privacy_ring(ws), mine)
    out: dict[str, list[Any]] = {field: [] for field in FIELDS}
    for claim, result in zip(mine, results, strict=True):
        if isinstance(result, Opened):
            out[claim.field].append(result.value)
        elif isinstance(result, Erased):
            out[claim.field].append({"erased": True, "erasure_index": erasure_index(ws, result.erasure_id)})
        elif isinstance(result, Tampered):
            raise IntegrityError(f"ledger entry {index}: {result.reason}", index=index, problem="changed")
        else:
            out[claim.field].append({"absent": True})
    return out
