"""Red-team runs (scope ``audit:read``): the recorded ``redteam.run`` entries, per model, newest first.

Reports are files on the machine that ran them; the console shows what the ledger records of
each run (version, sha256, suites, findings by severity, the report's digest) and links the
entry, whose page proves it against the signed checkpoint.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from mlwarden.identity.policy import subject_model
from mlwarden.identity.scopes import Scope
from mlwarden.redteam.kinds import REDTEAM_RUN
from mlwarden.web.auth import authorize, gateway_of, viewer
from mlwarden.web.ledger_search import LedgerFilter, search_entries
from mlwarden.web.render import page
from mlwarden.web.routing import ConsoleRoute

router = APIRouter(route_class=ConsoleRoute)
MAX_RUNS = 200
SEVERITIES = ("critical", "high", "medium", "low", "info")


def _run(row: Any) -> dict[str, Any]:
    body = row.body
    findings = body.get("findings") if isinstance(body.get("findings"), dict) else {}
    suites = body.get("suites") if isinstance(body.get("suites"), list) else []
    return {
        "index": row.index, "time": row.time, "principal": row.principal, "version": body.get("version"),
        "sha256": str(body.get("sha256", "")), "suites": [str(s) for s in suites],
        "findings": {s: findings.get(s, 0) for s in SEVERITIES if s in findings},
        "verdict": str(body.get("verdict", "")), "digest": str(body.get("report_digest", "")),
        "source": str(body.get("source", "")),
    }  # fmt: skip


@router.get("/redteam")
def redteam_page(request: Request) -> Response:
    who = viewer(request)
    gateway = gateway_of(request)
    gateway.record_allow(authorize(request, who, Scope.AUDIT_READ, "redteam"))
    found = search_entries(gateway.ws, LedgerFilter(kind=REDTEAM_RUN, limit=MAX_RUNS))
    models: dict[str, list[dict[str, Any]]] = {}
    for row in found.rows:
        model = subject_model(row.subject)
        if model is None or not who.may_see_model(model):
            continue
        models.setdefault(model, []).append(_run(row))
    return page(request, "redteam.html", viewer=who, models=models, more=found.next_before is not None)
