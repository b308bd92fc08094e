"""Listing ingested batches: their outcome, reasons and ingester (the ledger's word where it has one)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select

from mlwarden.store.schema import batches
from mlwarden.trust.follower import follower
from mlwarden.workspace import Workspace


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """One ingested batch as ``data batches`` shows it."""

    id: str
    dataset: str
    status: str
    rows: int
    reasons: list[str]
    ingested_by: str
    created: str
    dataset_version: int | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _reasons(text: str) -> list[str]:
    try:
        value = json.loads(text)
    except ValueError:
        return [text]
    return [str(r) for r in value] if isinstance(value, list) else [str(value)]


def list_batches(ws: Workspace, *, quarantined: bool = False, dataset: str | None = None) -> list[BatchSummary]:
    """Batches, oldest first; ``quarantined`` keeps those still in quarantine, ``dataset`` one dataset's.

    For quarantined and released batches the ingester and the release come from the ledger
    (a database writer cannot hide a quarantine by editing the row's status).
    """
    query = select(batches).order_by(batches.c.created, batches.c.id)
    if dataset is not None:
        query = query.where(batches.c.dataset == dataset)
    with ws.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
    facts = follower(ws).refresh().batches
    out = []
    for row in rows:
        status, ingested_by = str(row["status"]), str(row["ingested_by"])
        known = facts.get(str(row["id"]))
        if known is not None and (known.dataset, known.sha256) == (row["dataset"], row["sha256"]):
            status = "released" if known.released_by is not None else "quarantined"
            status = "rejected" if known.rejected_by is not None and status == "quarantined" else status
            ingested_by = known.ingested_by
        if quarantined and status != "quarantined":
            continue
        out.append(
            BatchSummary(
                id=str(row["id"]),
                dataset=str(row["dataset"]),
                status=status,
                rows=int(row["rows"]),
                reasons=_reasons(str(row["reasons"])),
                ingested_by=ingested_by,
                created=str(row["created"]),
                dataset_version=row["dataset_version"],
            )
        )
    return out
