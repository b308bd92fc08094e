"""The ledger: search with keyset pages, and an entry with its inclusion proof, verified by the browser itself.

Everything here needs ``audit:read``; an entry of a model's subject also needs that model (as
``GET /v1/ledger/proofs/inclusion``). Reading an entry or a decision is recorded as the API
records it (``access.allowed``).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from starlette.requests import Request
from starlette.responses import Response

from mlwarden.identity.policy import subject_model
from mlwarden.identity.scopes import Scope
from mlwarden.ledger.notes import Checkpoint
from mlwarden.web.auth import authorize, gateway_of, viewer
from mlwarden.web.ledger_search import LedgerFilter, LedgerPage, search_entries
from mlwarden.web.render import page
from mlwarden.web.routing import ConsoleRoute
from mlwarden.workspace import Workspace

router = APIRouter(route_class=ConsoleRoute)
Text = Annotated[str, Query(max_length=512)]


def proof_bundle(ws: Workspace, index: int) -> dict[str, Any]:
    """What the browser needs to verify entry ``index`` itself: its exact text, the audit path, the signed
    checkpoint and the workspace's verifier key (the key of the workspace's signing key file, not a column)."""
    log = ws.log
    note = log.head_note()
    head = Checkpoint.open(note, log.verifier)
    if index >= head.size:  # committed after the last interval signature
        note = log.sign_head(index + 1)
        head = Checkpoint.open(note, log.verifier)
    proof = log.inclusion_proof(index, head.size)
    return {"index": index, "tree_size": head.size, "path": [h.hex() for h in proof.path],
            "entry": log.entry(index).text, "note": note, "vkey": log.verifier.vkey(),
            "fingerprint": hashlib.sha256(log.verifier.public_raw).hexdigest()}  # fmt: skip


def _filter(
    kind: str,
    subject: str,
    principal: str,
    decision_id: str,
    since: str,
    until: str,
    status: str,
    before: int | None,
) -> LedgerFilter:
    return LedgerFilter(
        kind=kind.strip(), subject=subject.strip(), principal=principal.strip(), decision_id=decision_id.strip(),
        since=since.strip(), until=until.strip(), status=status.strip(), before=before,
    )  # fmt: skip


@router.get("/ledger")
def ledger(
    request: Request,
    kind: Text = "",
    subject: Text = "",
    principal: Text = "",
    decision_id: Text = "",
    since: Text = "",
    until: Text = "",
    status: Text = "",
    before: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    who = viewer(request)
    authorize(request, who, Scope.AUDIT_READ, "ledger")
    f = _filter(kind, subject, principal, decision_id, since, until, status, before)
    result = search_entries(gateway_of(request).ws, f)
    models = who.principal.models
    if models is not None:  # a model-restricted auditor sees no entry of another model (as the proof route)
        kept = [r for r in result.rows if (m := subject_model(r.subject)) is None or m in models]
        result = LedgerPage(kept, result.next_before, result.examined_down_to)
    more = f.query_string(result.next_before) if result.next_before is not None else None
    template = "ledger_rows.html" if request.headers.get("hx-request") == "true" else "ledger.html"
    return page(request, template, viewer=who, f=f, result=result, more=more, size=gateway_of(request).ws.log.size())


@router.get("/ledger/{index}")
def entry(request: Request, index: Annotated[int, Path(ge=0, le=2**62)]) -> Response:
    who = viewer(request)
    gateway = gateway_of(request)
    decision = gateway.authorize_entry(who.principal, Scope.AUDIT_READ, index)  # the model its subject names too
    gateway.record_allow(decision)
    bundle = proof_bundle(gateway.ws, index)
    parsed = gateway.ws.log.entry(index).parse()
    return page(request, "entry.html", viewer=who, entry=parsed.to_json(), proof=bundle)
