"""Erasures as recorded workflows: destroy the keys and append the erasure entry in one transaction."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from mlwarden.errors import InvalidInput
from mlwarden.ledger.kinds import ERASURE_KIND
from mlwarden.privacy import ErasureRecord, erase_subject, expire_inputs
from mlwarden.subjects.sealing import privacy_ring
from mlwarden.workspace import Workspace

ERASURE_SUBJECT = "privacy:erasure"
MIN_NAMED = 3
"""A subject id this long or longer may not appear as a word of the erasure reason (shorter ones are no name)."""


def _recorded(ws: Workspace, record: ErasureRecord, index: int) -> dict[str, Any]:
    out = record.entry_body() | {"ledger_index": index}
    if record.what != "retention":
        out.pop("key_ids", None)
    return out


def check_reason(reason: str, subject: str) -> None:
    """Refuse an erasure reason that names the subject or holds an identifier: it is kept in the ledger forever."""
    from mlwarden.privacy.identifiers import MAX_TEXT, find

    if not isinstance(reason, str) or len(reason) > MAX_TEXT:
        return  # the erasure itself refuses it with its own message
    name = subject.strip()
    if len(name) >= MIN_NAMED and re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", reason, re.IGNORECASE):
        raise InvalidInput(
            "the erasure reason names the subject; it is kept in the ledger, which never lists erased people: "
            "say why without naming them"
        )
    kinds = sorted({span.kind.value for span in find(reason)})
    if kinds:
        raise InvalidInput(f"the erasure reason holds personal identifiers ({', '.join(kinds)}): say it without them")


def erase_data_subject(
    ws: Workspace, subject: str, *, reason: str, principal: str, now: datetime | None = None
) -> dict[str, Any]:
    """Destroy every data key of ``subject`` and record it (``privacy.erased``); idempotent (0 keys the 2nd time).

    The entry and the answer name the erasure, its reason and the keys it destroyed; never the subject.
    """
    check_reason(reason, subject)
    ring = privacy_ring(ws)
    with ws.log.transaction() as tx:
        record = erase_subject(tx.conn, ring, subject, reason=reason, now=now or datetime.now(UTC))
        receipt = tx.append(
            kind=ERASURE_KIND, subject=ERASURE_SUBJECT, body=record.entry_body(), principal=principal,
            refs=(record.erasure_id,),
        )  # fmt: skip
    ring.forget_keys(set(record.key_ids))
    return _recorded(ws, record, receipt.index)


def expire_old_inputs(
    ws: Workspace, *, inputs_retention_days: int, principal: str, now: datetime | None = None
) -> dict[str, Any] | None:
    """Erase the inputs older than the retention limit (outputs and facts stay); None when nothing expired."""
    ring = privacy_ring(ws)
    with ws.log.transaction() as tx:
        record = expire_inputs(tx.conn, ring, inputs_retention_days=inputs_retention_days, now=now or datetime.now(UTC))
        if record.count == 0:
            return None
        receipt = tx.append(
            kind=ERASURE_KIND, subject=ERASURE_SUBJECT, body=record.entry_body(), principal=principal,
            refs=(record.erasure_id,),
        )  # fmt: skip
    ring.forget_keys(set(record.key_ids))
    return _recorded(ws, record, receipt.index)
