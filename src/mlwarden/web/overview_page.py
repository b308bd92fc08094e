"""The overview: models and what each serves, activity, quarantined batches, the ledger's head."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from mlwarden.data.batches import list_batches
from mlwarden.identity.scopes import Scope
from mlwarden.ledger.notes import Checkpoint
from mlwarden.registry.models import list_models
from mlwarden.trust.follower import follower
from mlwarden.web.activity import recent_activity
from mlwarden.web.alert_pages import visible_alerts
from mlwarden.web.auth import Viewer, gateway_of, viewer
from mlwarden.web.render import page
from mlwarden.web.routing import ConsoleRoute

router = APIRouter(route_class=ConsoleRoute)


def model_summaries(request: Request, who: Viewer) -> list[dict[str, Any]]:
    """Each model the viewer may see: its versions and the one the ledger puts in production."""
    gateway = gateway_of(request)
    state = follower(gateway.ws).state(gateway.settings.model_refresh_seconds)
    names: dict[str, int] = {}
    for row in list_models(gateway.ws):
        names[row["name"]] = names.get(row["name"], 0) + 1
    out = []
    for name, count in names.items():
        if not who.may_see_model(name):
            continue
        serving = state.production(name)
        out.append({"name": name, "versions": count, "serving": serving.version if serving else None,
                    "sha256": serving.sha256 if serving else None})  # fmt: skip
    return out


@router.get("/")
def overview(request: Request) -> Response:
    who = viewer(request)
    gateway = gateway_of(request)
    context: dict[str, Any] = {"models": None, "activity": None, "batches": None, "ledger": None, "alerts": None}
    if who.can(Scope.AUDIT_READ):
        context["models"] = model_summaries(request, who)
        context["activity"] = recent_activity(gateway.ws).to_json()
        note = gateway.ws.log.head_note()
        head = Checkpoint.open(note, gateway.ws.log.verifier)
        context["ledger"] = {"size": gateway.ws.log.size(), "checkpoint_size": head.size,
                             "root": head.root.hex(), "note": note}  # fmt: skip
        context["alerts"] = [a.alert.to_dict() for a in visible_alerts(gateway.ws, who, open_only=True)]
    if who.can(Scope.DATA_READ):
        context["batches"] = [b.to_json() for b in list_batches(gateway.ws, quarantined=True)]
    return page(request, "overview.html", viewer=who, **context)
