"""Reading an ingested batch back: its clear file, with each row's sealed personal cells opened or shown erased.

The clear file comes from the artifact store (re-hashed against the batch's ledger entry);
sealed cells are opened against the commitments that entry vouches for. A row whose subject
was erased keeps only its clear cells and reads ``{"erased": true, "erasure_index": n}``; a
payload that fails its checks raises :class:`IntegrityError` naming the entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from mlwarden.data.batch_sealing import batch_claims, is_sealed_batch
from mlwarden.errors import IntegrityError, NotFound
from mlwarden.ledger.entry import Entry
from mlwarden.privacy import Erased, Opened, Tampered, open_many
from mlwarden.registry.artifacts import ArtifactStore
from mlwarden.registry.datasets import data_format, scan
from mlwarden.store.schema import batches
from mlwarden.subjects.decisions import erasure_index
from mlwarden.subjects.sealing import privacy_ring
from mlwarden.workspace import Workspace


def batch_ref(batch_id: str) -> str:
    """The ledger reference a batch's entry is recorded under."""
    return f"batch:{batch_id}"


def _entry(ws: Workspace, batch_id: str) -> Entry:
    index = ws.log.find_ref(batch_ref(batch_id))
    if index is None:
        raise NotFound(f"batch {batch_id} has no sealed rows recorded in the ledger")
    entry, _proof = ws.log.verified_entry(index)
    if entry.body.get("batch") != batch_id or not is_sealed_batch(entry.kind, entry.body):
        raise IntegrityError(f"ledger entry {index} does not record batch {batch_id}", index=index)
    return entry


def _clear_rows(ws: Workspace, batch_id: str, entry: Entry) -> list[dict[str, Any]]:
    with ws.engine.connect() as conn:
        row = conn.execute(select(batches.c.filename).where(batches.c.id == batch_id)).first()
    if row is None:
        raise NotFound(f"batch {batch_id} does not exist")
    path = ArtifactStore(ws.options.paths.artifacts).verified_path(str(entry.body["sha256"]))
    return scan(path, data_format(Path(str(row[0])))).collect().to_dicts()


def open_batch_rows(ws: Workspace, batch_id: str) -> list[dict[str, Any]]:
    """Every row of a batch with sealed cells: ``{"row", "values", "erased"?}``, in row order.

    ``values`` holds the clear cells merged with the opened personal cells; for an erased row
    only the clear cells (identifiers masked) and ``"erased": {"erasure_index": n}``.
    """
    entry = _entry(ws, batch_id)
    clear = _clear_rows(ws, batch_id, entry)
    rows: list[dict[str, Any]] = [{"row": i, "values": values} for i, values in enumerate(clear)]
    with ws.engine.connect() as conn:
        claims = batch_claims(conn, entry.body, entry.index)
        results = open_many(conn, privacy_ring(ws), claims)
    where = f"ledger entry {entry.index}"
    for claim, result in zip(claims, results, strict=True):
        number = int(claim.decision_id.rsplit(":", 1)[1])
        if number >= len(rows):
            raise IntegrityError(
                f"ledger entry {entry.index}: sealed row {number} is past the batch", index=entry.index
            )
        if isinstance(result, Opened):
            if not isinstance(result.value, dict) or result.value.get("row") != number:
                raise IntegrityError(f"{where}: sealed row {number} is not that row's", index=entry.index)
            rows[number]["values"].update(result.value.get("cells") or {})
        elif isinstance(result, Erased):
            rows[number]["erased"] = {"erasure_index": erasure_index(ws, result.erasure_id)}
        elif isinstance(result, Tampered):
            raise IntegrityError(f"ledger entry {entry.index}: {result.reason}", index=entry.index)
        else:
            raise IntegrityError(f"ledger entry {entry.index}: sealed row {number} is missing", index=entry.index)
    return rows
