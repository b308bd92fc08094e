"""Models: the list, one model's versions, card, lineage and gate runs, and the promotion workflow's buttons.

Reading a model needs ``audit:read`` (and the model, for a model-restricted principal); every
button needs ``model:promote`` and calls the same workflow functions as the CLI and the API
(:mod:`mlwarden.registry.governance`), so approvals count for four eyes exactly as there.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Path, Query
from starlette.requests import Request
from starlette.responses import Response

from mlwarden.errors import ArtifactIntegrityError, GateFailed, InvalidInput
from mlwarden.identity.scopes import Scope
from mlwarden.registry.governance import approve, promote, rollback
from mlwarden.registry.models import STAGES, check_row, get_version, lineage, list_models
from mlwarden.trust.follower import follower
from mlwarden.web.auth import Viewer, authorize, gateway_of, viewer
from mlwarden.web.card_html import card_html
from mlwarden.web.overview_page import model_summaries
from mlwarden.web.render import page
from mlwarden.web.routing import ConsoleRoute, checked_form, text_field

router = APIRouter(route_class=ConsoleRoute)
Name = Annotated[str, Path(min_length=1, max_length=128)]
Version = Annotated[int, Path(ge=1, le=2_000_000_000)]


@router.get("/models")
def models(request: Request) -> Response:
    who = viewer(request)
    authorize(request, who, Scope.AUDIT_READ, "models")
    return page(request, "models.html", viewer=who, models=model_summaries(request, who))


def _signature_status(request: Request, row: dict[str, Any]) -> str:
    try:
        check_row(gateway_of(request).ws, row)
    except ArtifactIntegrityError as exc:
        return f"fails: {exc.message}"
    return "verified"


def _gate_runs(request: Request, name: str, version: int) -> list[dict[str, Any]]:
    """Every gate run of this version (newest first), with chart data for fairness and performance."""
    subject = f"model:{name}:{version}"
    runs = []
    for stored in gateway_of(request).ws.log.find("gate.run", subject, limit=50):
        entry = stored.parse()
        if entry.subject != subject:
            continue  # model:x:1 is a prefix of model:x:10
        results = [r for r in entry.body.get("results", []) if isinstance(r, dict)]
        runs.append({"index": entry.index, "time": entry.time, "principal": entry.principal,
                     "stage": entry.body.get("stage"), "passed": entry.body.get("passed"),
                     "results": [_with_bars(r) for r in results]})  # fmt: skip
    return runs


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _with_bars(result: dict[str, Any]) -> dict[str, Any]:
    """A gate result with ``bars``: per-group rates (fairness) or metric against production (performance)."""
    bars: list[dict[str, Any]] = []
    details: dict[str, Any] = result["details"] if isinstance(result.get("details"), dict) else {}
    by_group = details.get("by_group")
    if isinstance(by_group, dict):
        for group, values in sorted(by_group.items()):
            for metric, value in sorted(values.items()) if isinstance(values, dict) else []:
                if (number := _number(value)) is not None:
                    bars.append({"label": f"group {group}: {metric}", "value": number, "series": metric})
    production = details.get("production")
    measured: dict[str, Any] = result["measured"] if isinstance(result.get("measured"), dict) else {}
    if isinstance(production, dict) and result.get("gate") == "performance":
        for metric, value in sorted(measured.items()):
            if (number := _number(value)) is not None:
                bars.append({"label": f"{metric} (candidate)", "value": number, "series": "candidate"})
            if (base := _number(production.get(metric))) is not None:
                bars.append({"label": f"{metric} (production)", "value": base, "series": "production"})
    top = max([abs(b["value"]) for b in bars] + [1.0])
    for bar in bars:
        bar["width"] = round(280 * abs(bar["value"]) / top, 1)
    return {**result, "bars": bars}


def _versions(request: Request, name: str) -> list[dict[str, Any]]:
    state = follower(gateway_of(request).ws).refresh()  # fresh: the page follows the buttons it offers
    out = []
    for row in list_models(gateway_of(request).ws):
        if row["name"] != name:
            continue
        facts = state.version(name, row["version"])
        out.append({**row, "trusted_stage": facts.stage if facts else "unknown (no registration in the ledger)",
                    "approvals": sorted(facts.approvals) if facts else [],
                    "registrant": facts.registrant if facts else "?"})  # fmt: skip
    return out


@router.get("/models/{name}")
def model(request: Request, name: Name, version: Annotated[int | None, Query(ge=1)] = None) -> Response:
    who = viewer(request)
    authorize(request, who, Scope.AUDIT_READ, f"model:{name}", name)
    ws = gateway_of(request).ws
    row = get_version(ws, name, version)
    chosen = int(row["version"])
    meta = json.loads(row["card_meta"])
    context = {
        "name": name, "versions": _versions(request, name), "chosen": chosen, "row": row,
        "signature_status": _signature_status(request, row), "card": card_html(str(row["card"])),
        "card_meta": meta, "input_signature": json.loads(row["input_signature"]) if row["input_signature"] else None,
        "lineage": lineage(ws, name, chosen), "runs": _gate_runs(request, name, chosen), "stages": STAGES,
        "can_promote": who.can(Scope.MODEL_PROMOTE),
    }  # fmt: skip
    return page(request, "model.html", viewer=who, **context)


def _outcome(request: Request, who: Viewer, title: str, result: Any, back: str, failed: bool = False) -> Response:
    return page(request, "outcome.html", viewer=who, title=title, result=result, back=back, failed=failed)


@router.post("/models/{name}/{version}/approve")
async def approve_version(request: Request, name: Name, version: Version) -> Response:
    who = viewer(request)
    form = await checked_form(request, who)
    authorize(request, who, Scope.MODEL_PROMOTE, f"model:{name}:{version}", name)
    comment = text_field(form, "comment") or None
    ws = gateway_of(request).ws
    result = await anyio.to_thread.run_sync(lambda: approve(ws, name, version, who.principal.id, comment))
    return _outcome(request, who, f"approved {name}:{version}", result, f"/ui/models/{name}?version={version}")


@router.post("/models/{name}/{version}/promote")
async def promote_version(request: Request, name: Name, version: Version) -> Response:
    """Run the stage's gates and promote (``archived`` archives): refused gates show their results."""
    who = viewer(request)
    form = await checked_form(request, who)
    authorize(request, who, Scope.MODEL_PROMOTE, f"model:{name}:{version}", name)
    stage = text_field(form, "stage", required=True, limit=32)
    if stage not in STAGES:
        raise InvalidInput(f"stage {stage!r} is not one of {', '.join(STAGES)}")
    ws = gateway_of(request).ws
    back = f"/ui/models/{name}?version={version}"
    try:
        result = await anyio.to_thread.run_sync(lambda: promote(ws, name, version, stage, who.principal.id))
    except GateFailed as exc:
        gates = [r.to_json() for r in exc.results]
        return _outcome(request, who, exc.message, {"gates": gates}, back, failed=True)
    return _outcome(request, who, f"{name}:{version} is now {stage}", result, back)


@router.post("/models/{name}/rollback")
async def rollback_model(request: Request, name: Name) -> Response:
    who = viewer(request)
    await checked_form(request, who)
    authorize(request, who, Scope.MODEL_PROMOTE, f"model:{name}", name)
    ws = gateway_of(request).ws
    back = f"/ui/models/{name}"
    try:
        result = await anyio.to_thread.run_sync(lambda: rollback(ws, name, who.principal.id))
    except GateFailed as exc:
        return _outcome(request, who, exc.message, {"gates": [r.to_json() for r in exc.results]}, back, failed=True)
    return _outcome(request, who, f"{name} rolled back", result, back)
