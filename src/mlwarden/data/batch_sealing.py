"""A batch's personal cells, sealed per row under its data subject's key: stored beside the batch, erasable.

Each row with withheld cells (see :mod:`mlwarden.data.personal_columns`) becomes one payload
``{"row": i, "cells": {...}}`` sealed with the public sealing API (:func:`mlwarden.privacy.seal`)
as the ``inputs`` of the pseudo-decision ``batch:<batch id>:<row>``: under the row's subject's key
of the day when the subject column names one, else under a key of its own. Erasing the subject
destroys that key, so the row's personal cells become unreadable wherever they were copied;
retention (``inputs_retention_days``) erases them like prediction inputs.

The commitments go to ``batch_sealed_rows``; the batch's ledger entry commits to them by
``commitments_root``: the RFC 9162 Merkle root over the leaves ``"<row> <commitment>"`` in row
order (so one row can later be proven by a short audit path), and names columns and counts
only: never a value, never a subject.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, insert, select

from mlwarden.data.personal_columns import PersonalSplit
from mlwarden.errors import IntegrityError
from mlwarden.ledger.merkle import merkle_root
from mlwarden.privacy import Commitment, Field, PayloadClaim, PayloadRequest, SealedPayload, seal, store_payloads
from mlwarden.privacy.commitments import commitment_leaf
from mlwarden.store.engine import write_transaction
from mlwarden.store.schema import batch_sealed_rows
from mlwarden.subjects.sealing import privacy_ring
from mlwarden.workspace import Workspace

SEALED_VERSION = 1
FIELD: Field = "inputs"
_INSERT_CHUNK = 5000
_INT_LIMIT = 2**53 - 1


def payload_id(batch_id: str, row: int) -> str:
    """The pseudo-decision id a batch row's payload is sealed under (its associated data binds it)."""
    return f"batch:{batch_id}:{row}"


def _plain(value: Any) -> Any:
    """A cell as a JSON value: dates and decimals as text, integers beyond 2**53 as text."""
    if value is None or isinstance(value, bool | str | float):
        return value
    if isinstance(value, int):
        return value if -_INT_LIMIT <= value <= _INT_LIMIT else str(value)
    if isinstance(value, datetime | date | time | Decimal):
        return str(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def commitments_root(rows: Sequence[tuple[int, str]]) -> str:
    """The RFC 9162 Merkle root (hex) over the rows' leaves, in row order."""
    return merkle_root([commitment_leaf(row, c) for row, c in sorted(rows)]).hex()


@dataclass(frozen=True, slots=True)
class SealedBatchRows:
    """The sealed payloads of a batch, each row's commitment, and what the ledger entry says of them."""

    sealed: list[SealedPayload]
    commitments: list[tuple[int, str]]
    summary: dict[str, Any]

    def body(self) -> dict[str, Any]:
        """The ``sealed`` section of the batch's ledger entry."""
        return {"v": SEALED_VERSION, **self.summary, "commitments_root": commitments_root(self.commitments)}


def seal_batch_rows(ws: Workspace, batch_id: str, split: PersonalSplit, *, now: datetime) -> SealedBatchRows:
    """Seal each row's withheld cells (subjects' keys found or made in a short transaction of their own)."""
    requests = [
        PayloadRequest.for_row(
            payload_id(batch_id, row),
            FIELD,
            {"row": row, "cells": {k: _plain(v) for k, v in cells.items()}},
            subject=split.subjects.get(row),
        )
        for row, cells in sorted(split.withheld.items())
    ]
    with write_transaction(ws.engine) as conn:
        sealed = seal(conn, privacy_ring(ws), requests, now=now) if requests else []
    rows = sorted(split.withheld)
    commitments = [(row, s.commitment.hex) for row, s in zip(rows, sealed, strict=True)]
    return SealedBatchRows(sealed, commitments, split.summary())


def store_batch_rows(conn: Connection, batch_id: str, rows: SealedBatchRows) -> None:
    """Insert the payloads and the commitments (in the transaction that appends the batch's entry)."""
    store_payloads(conn, rows.sealed)
    values = [{"batch_id": batch_id, "row": row, "commitment": c} for row, c in rows.commitments]
    for start in range(0, len(values), _INSERT_CHUNK):
        conn.execute(insert(batch_sealed_rows), values[start : start + _INSERT_CHUNK])


def is_sealed_batch(kind: str, body: dict[str, Any]) -> bool:
    """Whether a verified entry records a batch whose personal cells were sealed."""
    return (
        kind.startswith("data.batch_") and isinstance(body.get("sealed"), dict) and isinstance(body.get("batch"), str)
    )


def batch_claims(conn: Connection, body: dict[str, Any], index: int) -> list[PayloadClaim]:
    """What a verified batch entry commits to: one claim per sealed row, checked against ``commitments_root``.

    A commitment changed, added or dropped in ``batch_sealed_rows`` raises :class:`IntegrityError`
    naming the entry.
    """
    batch_id, sealed = str(body["batch"]), body["sealed"]
    c = batch_sealed_rows.c
    stored = [
        (int(r), str(h))
        for r, h in conn.execute(select(c.row, c.commitment).where(c.batch_id == batch_id).order_by(c.row))
    ]
    if commitments_root(stored) != sealed.get("commitments_root"):
        raise IntegrityError(
            f"ledger entry {index}: the stored commitments of batch {batch_id}'s sealed rows do not match the entry",
            index=index,
            problem="changed",
        )
    return [PayloadClaim(payload_id(batch_id, row), FIELD, Commitment.parse(h)) for row, h in stored]
