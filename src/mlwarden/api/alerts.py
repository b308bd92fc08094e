"""``GET /v1/alerts`` (scope audit:read) and ``POST /v1/alerts/{id}/ack`` (scope alert:ack).

Acknowledging closes an alert for everybody watching it, which is a change rather than a
read, so it has its own scope: an auditor's ``audit:read`` token cannot silence an alert.
A model-restricted token sees only the alerts about its models.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from mlwarden.api.gateway import Gateway
from mlwarden.api.predict_route import admit
from mlwarden.errors import NotFound
from mlwarden.identity.policy import Principal, subject_model
from mlwarden.identity.scopes import Scope
from mlwarden.monitor.alerts_store import MAX_REASON, ListedAlert, acknowledge, list_alerts

ALERT_ID = re.compile(r"alrt_[0-9a-f]{32}")

router = APIRouter()


async def _caller(request: Request) -> Principal:
    return await admit(request.app.state, request.scope)


Caller = Annotated[Principal, Depends(_caller)]


class AckBody(BaseModel):
    """Why the alert is acknowledged (recorded in the ledger)."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=MAX_REASON)


def _visible(principal: Principal, listed: ListedAlert) -> bool:
    if principal.models is None:
        return True
    model = subject_model(listed.alert.subject or "")
    return model is not None and model in principal.models


@router.get("/v1/alerts", summary="Alerts raised by the watcher (scope audit:read)")
def get_alerts(
    request: Request, principal: Caller, open_only: Annotated[bool, Query(alias="open")] = False
) -> dict[str, Any]:
    gateway: Gateway = request.app.state.gateway
    gateway.record_allow(gateway.authorize(principal, Scope.AUDIT_READ, "alerts"))
    found = [a for a in list_alerts(gateway.ws, open_only=open_only) if _visible(principal, a)]
    return {"alerts": [a.to_dict() for a in found]}


@router.post("/v1/alerts/{alert_id}/ack", summary="Acknowledge an alert (scope alert:ack)")
def ack_alert(alert_id: str, body: AckBody, request: Request, principal: Caller) -> dict[str, Any]:
    gateway: Gateway = request.app.state.gateway
    gateway.authorize(principal, Scope.ALERT_ACK, "alerts")
    if not ALERT_ID.fullmatch(alert_id):
        raise NotFound("no such alert: alert ids look like alrt_ followed by 32 hex digits")
    visible = {a.alert.alert_id for a in list_alerts(gateway.ws) if _visible(principal, a)}
    if alert_id not in visible:
        raise NotFound(f"alert {alert_id} is not in the ledger")
    return acknowledge(gateway.ws, alert_id, principal=principal.id, reason=body.reason).to_dict()
