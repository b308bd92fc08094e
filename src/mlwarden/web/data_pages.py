"""Data: datasets and their versions, ingested batches with their contract and screening results, drift;
releasing a quarantined batch (never by its ingester: the workflow refuses it) or rejecting it.

Reading needs ``data:read``; release and reject need ``data:write``, as ingestion does.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Path
from starlette.requests import Request
from starlette.responses import Response

from mlwarden.data.batch_rejection import reject
from mlwarden.data.batches import list_batches
from mlwarden.data.ingest import release
from mlwarden.errors import NotFound
from mlwarden.identity.scopes import Scope
from mlwarden.registry.dataset_versions import list_datasets
from mlwarden.web.auth import authorize, gateway_of, viewer
from mlwarden.web.render import page
from mlwarden.web.routing import ConsoleRoute, checked_form, text_field

router = APIRouter(route_class=ConsoleRoute)
BatchId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[0-9a-f]+$")]


@router.get("/data")
def data(request: Request) -> Response:
    who = viewer(request)
    authorize(request, who, Scope.DATA_READ, "datasets")
    ws = gateway_of(request).ws
    batches = [b.to_json() for b in reversed(list_batches(ws))]
    return page(request, "data.html", viewer=who, datasets=list_datasets(ws), batches=batches)


def _screening(request: Request, dataset: str, batch_id: str) -> dict[str, Any] | None:
    """The batch's own ledger entry (contract and screening results, drift), from its text."""
    log = gateway_of(request).ws.log
    for kind in ("data.batch_quarantined", "data.batch_accepted"):
        for stored in log.find(kind, f"dataset:{dataset}", limit=500):
            entry = stored.parse()
            if entry.body.get("batch") == batch_id and entry.subject == f"dataset:{dataset}":
                return {"index": entry.index, "time": entry.time, **entry.body}
    return None


def _drift_bars(drift: Any) -> list[dict[str, Any]]:
    if not isinstance(drift, dict):
        return []
    bars = []
    for column, values in sorted(drift.items()):
        psi = values.get("psi") if isinstance(values, dict) else None
        if isinstance(psi, int | float) and not isinstance(psi, bool):
            bars.append({"label": str(column), "value": float(psi), "ks": values.get("ks")})
    top = max([b["value"] for b in bars] + [0.25])
    for bar in bars:
        bar["width"] = round(280 * max(bar["value"], 0.0) / top, 1)
    return bars


@router.get("/data/batches/{batch_id}")
def batch(request: Request, batch_id: BatchId) -> Response:
    who = viewer(request)
    authorize(request, who, Scope.DATA_READ, f"batch:{batch_id}")
    found = next((b for b in list_batches(gateway_of(request).ws) if b.id == batch_id), None)
    if found is None:
        raise NotFound(f"batch {batch_id} does not exist")
    screening = _screening(request, found.dataset, batch_id)
    return page(request, "batch.html", viewer=who, batch=found.to_json(), screening=screening,
                drift=_drift_bars(screening.get("drift") if screening else None),
                can_write=who.can(Scope.DATA_WRITE))  # fmt: skip


@router.post("/data/batches/{batch_id}/{action}")
async def decide_batch(request: Request, batch_id: BatchId,
                       action: Annotated[str, Path(pattern="^(release|reject)$")]) -> Response:  # fmt: skip
    """Release (another person than the ingester, with a reason) or reject: the workflow functions of the CLI."""
    who = viewer(request)
    form = await checked_form(request, who)
    authorize(request, who, Scope.DATA_WRITE, f"batch:{batch_id}")
    reason = text_field(form, "reason", required=True, limit=2000)
    ws = gateway_of(request).ws
    if action == "release":
        result = await anyio.to_thread.run_sync(lambda: release(ws, batch_id, who.principal.id, reason))
    else:
        result = await anyio.to_thread.run_sync(lambda: reject(ws, batch_id, who.principal.id, reason))
    return page(request, "outcome.html", viewer=who, title=f"batch {batch_id}: {result['status']}", result=result,
                back=f"/ui/data/batches/{batch_id}", failed=False)  # fmt: skip
