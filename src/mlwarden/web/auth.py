"""Who is looking at the console: the session cookie, the credential re-checked, CSRF, scopes per page."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request

from mlwarden.errors import MlwardenError, Unauthenticated
from mlwarden.identity.policy import Decision, Principal
from mlwarden.identity.scopes import Scope
from mlwarden.web.sessions import SPIFFE_CREDENTIAL, end_session, open_session

if TYPE_CHECKING:
    from mlwarden.api.gateway import Gateway

COOKIE = "mlwarden_console"
SIGNIN_COOKIE = "mlwarden_console_signin"
"""The double-submit cookie of the sign-in form (there is no session yet to bind its token to)."""


class SignInNeeded(Exception):
    """No live session: the console answers with the sign-in page."""


class CsrfRefused(MlwardenError):
    """A form came without the token the console gave it (403 page)."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in principal, its session and the token its forms carry."""

    principal: Principal
    session_id: str
    csrf: str

    def can(self, scope: Scope) -> bool:
        """Whether the principal holds ``scope`` (for what a page shows; actions ask the PDP)."""
        return scope in self.principal.scopes

    def may_see_model(self, name: str) -> bool:
        """Whether a model-restricted principal may see model ``name``."""
        return self.principal.models is None or name in self.principal.models


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def spiffe_of(request: Request) -> str | None:
    """The verified client certificate's SPIFFE ID of this connection, if any."""
    found = request.scope.get("extensions", {}).get("mlwarden.spiffe_id")
    return str(found) if found else None


def viewer(request: Request) -> Viewer:
    """The signed-in viewer; the credential is checked again now (revoked, expired: the session ends)."""
    gateway = gateway_of(request)
    session_id = request.cookies.get(COOKIE, "")
    session = open_session(gateway.ws, session_id)
    if session is None:
        raise SignInNeeded
    try:
        if session.credential.startswith(SPIFFE_CREDENTIAL):
            spiffe = session.credential.removeprefix(SPIFFE_CREDENTIAL)
            if spiffe_of(request) != spiffe:  # the session belongs to the certificate, shown on each connection
                raise Unauthenticated("the client certificate of this connection is not the one that signed in")
            principal = gateway.principal_from_spiffe(spiffe)
        else:
            principal = gateway.principal_from_token(session.credential)
    except Unauthenticated:
        end_session(gateway.ws, session_id)
        raise SignInNeeded from None
    request.state.principal_id = principal.id  # a refusal recorded later names the viewer
    return Viewer(principal, session_id, session.csrf)


def authorize(request: Request, who: Viewer, scope: Scope, resource: str, model: str | None = None) -> Decision:
    """Ask the policy decision point, exactly as the API does: a denial is recorded and raised (403 page)."""
    return gateway_of(request).authorize(who.principal, scope, resource, model)


def check_csrf(who: Viewer, form_token: object) -> None:
    """Refuse a POST whose form does not carry this session's token."""
    if not isinstance(form_token, str) or not hmac.compare_digest(form_token.encode(), who.csrf.encode()):
        raise CsrfRefused("the form is missing its CSRF token or carries a wrong one: reload the page and try again")
