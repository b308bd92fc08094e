"""``GET /v1/audit/entries``: the audit query over HTTP (scope ``audit:read``), keyset-paginated by index.

Every parameter is optional and parsed here, so a bad one is a 400 problem naming it (never
FastAPI's generic 422). A model-restricted principal must name one of its models with
``model=`` and sees only that model's entries. Each allowed read is itself recorded.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from mlwarden.api.gateway import Gateway
from mlwarden.api.predict_route import admit
from mlwarden.audit.filters import MAX_LIMIT, AuditFilter, parse_filter
from mlwarden.audit.query import query_page
from mlwarden.errors import InvalidInput, PolicyDenied
from mlwarden.identity.policy import Decision, Principal, subject_model
from mlwarden.identity.scopes import Scope

router = APIRouter()


async def _caller(request: Request) -> Principal:
    return await admit(request.app.state, request.scope)


def _integer(name: str, text: str | None, low: int, high: int) -> int | None:
    if text is None:
        return None
    if not text.strip().isdigit() or not low <= int(text) <= high:
        raise InvalidInput(f"parameter {name}: expected an integer from {low} to {high}, got {text[:40]!r}")
    return int(text)


def _authorize(request: Request, principal: Principal, model: str | None) -> None:
    gateway: Gateway = request.app.state.gateway
    if principal.models is not None and model is None:
        reason = "limited to models: name one with the model parameter"
        gateway.record_denial(Decision(False, reason, principal.id, Scope.AUDIT_READ.value, "ledger"))
        request.app.state.metrics.denied("policy").inc()
        raise PolicyDenied(f"{reason} (action {Scope.AUDIT_READ.value} on ledger)")
    name = None if model is None else subject_model(f"model:{model}")
    try:
        decision = gateway.authorize(principal, Scope.AUDIT_READ, "ledger" if name is None else f"model:{name}", name)
    except PolicyDenied:
        request.app.state.metrics.denied("policy").inc()
        raise
    gateway.record_allow(decision)


@router.get("/v1/audit/entries", summary="Ledger entries matching filters, by index (scope audit:read)")
def audit_entries(
    request: Request,
    principal: Annotated[Principal, Depends(_caller)],
    kind: Annotated[list[str] | None, Query(description="Entry kind; repeat or comma-separate.")] = None,
    principal_id: Annotated[str | None, Query(alias="principal", description="Who acted.")] = None,
    subject: Annotated[str | None, Query(description="Subject prefix, e.g. model:bc.")] = None,
    model: Annotated[str | None, Query(description="Model name or name:version.")] = None,
    decision: Annotated[str | None, Query(description="Decision id.")] = None,
    since: Annotated[str | None, Query(description="ISO time or 30m/1h/7d ago.")] = None,
    until: Annotated[str | None, Query(description="ISO time or 30m/1h/7d ago (exclusive).")] = None,
    since_index: Annotated[str | None, Query(description="First ledger index to look at.")] = None,
    status: Annotated[str | None, Query(description="HTTP status of rejections.")] = None,
    limit: Annotated[str | None, Query(description=f"Page size, 1-{MAX_LIMIT} (default 100).")] = None,
) -> dict[str, Any]:
    """``{"entries": [...], "next_since_index": N | null}``; the next page is the same query with since_index=N."""
    flt = _parse(kind, principal_id, subject, model, decision, since, until, since_index, status, limit)
    _authorize(request, principal, flt.model)
    gateway: Gateway = request.app.state.gateway
    page = query_page(gateway.ws.engine, flt)
    return {"entries": [row.to_json() for row in page.rows], "next_since_index": page.next_since_index}


def _parse(
    kind: list[str] | None,
    principal: str | None,
    subject: str | None,
    model: str | None,
    decision: str | None,
    since: str | None,
    until: str | None,
    since_index: str | None,
    status: str | None,
    limit: str | None,
) -> AuditFilter:
    try:
        return parse_filter(
            kinds=kind, principal=principal, subject=subject, model=model, decision=decision, since=since,
            until=until, since_index=_integer("since_index", since_index, 0, 2**62),
            status=_integer("status", status, 100, 999), limit=_integer("limit", limit, 1, MAX_LIMIT),
        )  # fmt: skip
    except InvalidInput as exc:
        message = exc.message if exc.message.startswith("parameter ") else f"parameter {exc.message}"
        raise InvalidInput(message) from exc
