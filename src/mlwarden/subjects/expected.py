"""Feedback's ``expected`` value, sealed like a prediction's payloads: a commitment in the entry, the value encrypted.

The value is sealed under the key of the decision's data subject (field ``expected``, the day of
the feedback) when the decision named one, so erasing the subject erases it too; otherwise under
a key of its own, wrapped inline in its ``privacy_payloads`` row (keyed by the feedback id), which
erasing the feedback id as a decision destroys. Retention, which erases inputs only, keeps it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from mlwarden.privacy import DataKey, KeyRing, KeySlot, PayloadRequest, Scope, SealedPayload, utc_day
from mlwarden.privacy.keys import NewKey
from mlwarden.privacy.payloads import seal_with_keys, store_payloads
from mlwarden.privacy.scopes import Field
from mlwarden.store.schema import privacy_erasures, privacy_keys, privacy_payloads, privacy_rows
from mlwarden.subjects.sealing import ENTRY_VERSION, privacy_ring
from mlwarden.workspace import Workspace

FIELD: Field = "expected"


def decision_subject_tag(conn: Connection, decision_id: str) -> str | None:
    """The scope tag of the data subject a decision's row was sealed for (None: no subject, or its keys are gone)."""
    r, p, k = privacy_rows.c, privacy_payloads.c, privacy_keys.c
    key_id = conn.execute(
        select(r.inputs_key).where(r.decision_id == decision_id, r.share.is_(None), r.erasure_id.is_(None))
    ).scalar()
    if key_id is None:  # sealed before migration 0017: a subject's version-1 row names its key, holds none
        key_id = conn.execute(
            select(p.key_id).where(
                p.decision_id == decision_id, p.field == "inputs", p.wrapped_key.is_(None), p.erasure_id.is_(None)
            )
        ).scalar()
    if key_id is None:
        return None
    live = k.key_id.not_in(select(privacy_erasures.c.key_id))
    tag = conn.execute(select(k.scope_tag).where(k.key_id == key_id, live)).scalar()
    return None if tag is None else str(tag)


def seal_expected(
    conn: Connection, ring: KeyRing, feedback_id: str, decision_id: str, expected: Any, *, now: datetime
) -> SealedPayload:
    """Seal ``expected`` for feedback ``feedback_id`` on ``decision_id`` (see the module's docstring)."""
    day = utc_day(now)
    request = PayloadRequest(feedback_id, FIELD, expected, Scope.decision(feedback_id))
    tag = decision_subject_tag(conn, decision_id)
    key: DataKey | NewKey
    if tag is None:
        key = ring.new_keys([ring.slot(request.scope, FIELD, day)])[0]
    else:
        slot = KeySlot(tag, FIELD, day)
        key = ring.subject_keys(conn, [slot], now=now)[slot]
    return seal_with_keys([request], [key], day)[0]


def record_feedback(ws: Workspace, *, subject: str, principal: str, body: dict[str, Any], expected: Any,
                    now: datetime | None = None) -> int:  # fmt: skip
    """Append the feedback entry ``body`` (with ``feedback_id`` and ``decision_id``) and its sealed ``expected``
    value in one transaction; the entry's index. ``expected`` None is recorded as such (nothing to seal)."""
    moment = now or datetime.now(UTC)
    ring = privacy_ring(ws)
    with ws.log.transaction() as tx:
        sealed = None
        if expected is not None:
            sealed = seal_expected(tx.conn, ring, body["feedback_id"], body["decision_id"], expected, now=moment)
        full = body | {"v": ENTRY_VERSION, "expected_commitment": None if sealed is None else sealed.commitment.hex}
        receipt = tx.append(kind="feedback", subject=subject, body=full, principal=principal,
                            refs=(body["feedback_id"],))  # fmt: skip
        if sealed is not None:
            store_payloads(tx.conn, [sealed], ledger_index=receipt.index)
    return receipt.index
