"""Tokens (scope ``admin``): list (never a secret), create (the secret shown once, on that page only), revoke.

The same calls as ``/v1/admin/tokens``: the creator's grant and model restriction bound what it
may mint (:meth:`Gateway.authorize_mint`), and every creation and revocation is in the ledger.
"""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Path
from starlette.requests import Request
from starlette.responses import Response

from mlwarden.api.uploads import expiry
from mlwarden.identity.scopes import Scope, effective_grant, parse_scopes
from mlwarden.identity.tokens import create_token, list_tokens, revoke_token, token_json
from mlwarden.web.auth import Viewer, authorize, gateway_of, viewer
from mlwarden.web.render import page
from mlwarden.web.routing import ConsoleRoute, checked_form, text_field

router = APIRouter(route_class=ConsoleRoute)


def _tokens_page(request: Request, who: Viewer, created: dict[str, object] | None = None) -> Response:
    ws = gateway_of(request).ws
    listed = [token_json(t, problem) for t, problem in list_tokens(ws)]
    return page(request, "tokens.html", viewer=who, tokens=listed, created=created,
                grantable=sorted(s.value for s in who.principal.grant))  # fmt: skip


@router.get("/tokens")
def tokens(request: Request) -> Response:
    who = viewer(request)
    gateway_of(request).record_allow(authorize(request, who, Scope.ADMIN, "tokens"))
    return _tokens_page(request, who)


@router.post("/tokens")
async def create(request: Request) -> Response:
    who = viewer(request)
    form = await checked_form(request, who)
    gateway = gateway_of(request)
    authorize(request, who, Scope.ADMIN, "tokens")
    name = text_field(form, "name", required=True, limit=128)
    scopes = parse_scopes([s for s in form.getlist("scopes") if isinstance(s, str)])
    models_text = text_field(form, "models", limit=4000)
    models = [m.strip() for m in models_text.split(",") if m.strip()] or None
    expires = text_field(form, "expires", limit=16) or None
    grant = effective_grant(scopes, None)
    gateway.authorize_mint(who.principal, scopes, grant, models)
    expires_at = expiry(expires)

    def mint() -> tuple[str, dict[str, object]]:
        token, record = create_token(gateway.ws, name=name, scopes=[s.value for s in scopes],
                                     principal=who.principal.id, models=models, expires_at=expires_at,
                                     grant=[s.value for s in grant])  # fmt: skip
        return token, record.to_json()

    token, record = await anyio.to_thread.run_sync(mint)
    return _tokens_page(request, who, {"token": token, **record})


@router.post("/tokens/{token_id}/revoke")
async def revoke(request: Request, token_id: Annotated[str, Path(min_length=1, max_length=32)]) -> Response:
    who = viewer(request)
    await checked_form(request, who)
    authorize(request, who, Scope.ADMIN, f"token:{token_id}")
    ws = gateway_of(request).ws
    record = await anyio.to_thread.run_sync(lambda: revoke_token(ws, token_id, who.principal.id))
    return page(request, "outcome.html", viewer=who, title=f"token {token_id} revoked", result=record.to_json(),
                back="/ui/tokens", failed=False)  # fmt: skip
