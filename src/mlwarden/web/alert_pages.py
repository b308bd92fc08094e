"""Alerts: the watcher's alerts (scope ``audit:read``) and acknowledging one (scope ``alert:ack``).

The same calls as ``GET /v1/alerts`` and ``POST /v1/alerts/{id}/ack``: the list is what the
ledger backs (a row written straight into the ``alerts`` table is not shown), a model-restricted
viewer sees only the alerts about its models, and an acknowledgement is an ``alert.acknowledged``
ledger entry naming the signed-in principal.
"""

from __future__ import annotations

import re
from typing import Annotated

import anyio
from fastapi import APIRouter, Path, Query
from starlette.requests import Request
from starlette.responses import Response

from mlwarden.errors import NotFound
from mlwarden.identity.policy import subject_model
from mlwarden.identity.scopes import Scope
from mlwarden.monitor.alerts_store import MAX_REASON, ListedAlert, acknowledge, list_alerts
from mlwarden.web.auth import Viewer, authorize, gateway_of, viewer
from mlwarden.web.render import page
from mlwarden.web.routing import ConsoleRoute, checked_form, text_field
from mlwarden.workspace import Workspace

router = APIRouter(route_class=ConsoleRoute)
ALERT_ID = re.compile(r"alrt_[0-9a-f]{32}")
OVERVIEW_ALERTS = 10


def visible_alerts(ws: Workspace, who: Viewer, *, open_only: bool) -> list[ListedAlert]:
    """The alerts the ledger backs that ``who`` may see (a model-restricted viewer: its models only)."""
    found = list_alerts(ws, open_only=open_only)
    if who.principal.models is None:
        return found
    return [a for a in found if (m := subject_model(a.alert.subject or "")) is not None and who.may_see_model(m)]


@router.get("/alerts")
def alerts_page(request: Request, show: Annotated[str, Query(max_length=8)] = "open") -> Response:
    who = viewer(request)
    gateway = gateway_of(request)
    gateway.record_allow(authorize(request, who, Scope.AUDIT_READ, "alerts"))
    open_only = show != "all"
    listed = visible_alerts(gateway.ws, who, open_only=open_only)
    return page(request, "alerts.html", viewer=who, alerts=[a.to_dict() for a in listed], open_only=open_only,
                can_ack=who.can(Scope.ALERT_ACK), max_reason=MAX_REASON)  # fmt: skip


@router.post("/alerts/{alert_id}/ack")
async def ack(request: Request, alert_id: Annotated[str, Path(max_length=64)]) -> Response:
    who = viewer(request)
    form = await checked_form(request, who)
    gateway = gateway_of(request)
    authorize(request, who, Scope.ALERT_ACK, "alerts")
    if not ALERT_ID.fullmatch(alert_id):
        raise NotFound("no such alert: alert ids look like alrt_ followed by 32 hex digits")
    reason = text_field(form, "reason", required=True, limit=MAX_REASON)

    def run() -> dict[str, object]:
        if alert_id not in {a.alert.alert_id for a in visible_alerts(gateway.ws, who, open_only=False)}:
            raise NotFound(f"alert {alert_id} is not in the ledger")
        return acknowledge(gateway.ws, alert_id, principal=who.principal.id, reason=reason).to_dict()

    result = await anyio.to_thread.run_sync(run)
    return page(request, "outcome.html", viewer=who, title=f"alert {alert_id} acknowledged", result=result,
                back="/ui/alerts", failed=False)  # fmt: skip
