"""Decisions and feedback: look up a decision id, its inputs and outputs, its feedback and proof; flagged queues.

Scope: ``audit:read`` (and the decision's model for a model-restricted principal), the scope
``GET /v1/decisions/{id}`` asks for, which opens the sealed inputs and outputs the same way:
an erased payload shows as erased. The lookup is recorded as an ``access.allowed`` entry.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from mlwarden.identity.scopes import Scope
from mlwarden.subjects.decisions import decision_payloads
from mlwarden.web.auth import authorize, gateway_of, viewer
from mlwarden.web.ledger_pages import proof_bundle
from mlwarden.web.overview_page import model_summaries
from mlwarden.web.render import page
from mlwarden.web.routing import ConsoleRoute

router = APIRouter(route_class=ConsoleRoute)


def _feedback(request: Request, subject: str, decision_id: str) -> list[dict[str, Any]]:
    found = gateway_of(request).ws.log.find("feedback", subject, limit=500)
    return [e.parse().to_json() for e in found if e.parse().body.get("decision_id") == decision_id]


@router.get("/decisions")
def decisions(request: Request, id: Annotated[str, Query(max_length=64)] = "") -> Response:
    who = viewer(request)
    gateway = gateway_of(request)
    decision_id = id.strip()
    if not decision_id:
        authorize(request, who, Scope.AUDIT_READ, "decisions")
        queues = model_summaries(request, who)
        return page(request, "decisions.html", viewer=who, found=None, decision_id="", queues=queues, proof=None)
    allow, index, entry = gateway.authorize_decision(who.principal, Scope.AUDIT_READ, decision_id)
    gateway.record_allow(allow)
    found = {"index": index, "entry": entry, **decision_payloads(gateway.ws, entry, decision_id),
             "feedback": _feedback(request, entry["subject"], decision_id)}  # fmt: skip
    return page(request, "decisions.html", viewer=who, found=found, decision_id=decision_id, queues=[],
                proof=proof_bundle(gateway.ws, index))  # fmt: skip


@router.get("/decisions/flagged")
def flagged(request: Request, model: Annotated[str, Query(min_length=1, max_length=128)]) -> Response:
    """The feedback on a model's decisions, newest first: the queue a reviewer works through."""
    who = viewer(request)
    authorize(request, who, Scope.AUDIT_READ, f"model:{model}", model)
    entries = [e.parse().to_json() for e in gateway_of(request).ws.log.find("feedback", f"model:{model}:", limit=200)]
    return page(request, "flagged.html", viewer=who, model=model, entries=entries)
