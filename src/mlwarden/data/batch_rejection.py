"""Rejecting a quarantined batch: it stays out of the dataset for good, recorded with who and why."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from mlwarden.data.ingest import quarantined_batch
from mlwarden.errors import InvalidInput
from mlwarden.store.schema import batches
from mlwarden.workspace import Workspace

REJECTED_KIND = "data.batch_rejected"


def reject(ws: Workspace, batch_id: str, principal: str, reason: str) -> dict[str, Any]:
    """Reject a quarantined batch (anyone allowed to write data, its ingester included: nothing enters).

    The ledger's entry decides: a rejected batch can no longer be released, whatever its row says.
    """
    if not reason or not reason.strip():
        raise InvalidInput("a rejection needs a reason")
    row = quarantined_batch(ws, batch_id)
    with ws.log.transaction() as tx:
        receipt = tx.append(
            kind=REJECTED_KIND,
            subject=f"dataset:{row['dataset']}",
            body={"batch": batch_id, "reason": reason.strip(), "ingested_by": row["ingested_by"]},
            principal=principal,
        )
        tx.conn.execute(update(batches).where(batches.c.id == batch_id).values(status="rejected"))
    return {"batch": batch_id, "status": "rejected", "ledger_index": receipt.index}
