"""Signing in and out of the console, and its vendored static files."""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta
from importlib.resources import files
from typing import Annotated

import anyio
from fastapi import APIRouter, Path
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mlwarden.errors import InvalidInput, NotFound, Unauthenticated
from mlwarden.identity.tokens import authenticate
from mlwarden.web.auth import COOKIE, SIGNIN_COOKIE, CsrfRefused, gateway_of, spiffe_of, viewer
from mlwarden.web.render import page, secure
from mlwarden.web.routing import MAX_FIELDS, ConsoleRoute, checked_form
from mlwarden.web.sessions import SPIFFE_CREDENTIAL, create_session, end_session

router = APIRouter(route_class=ConsoleRoute)

STATIC = {
    "console.css": "text/css",
    "console.js": "text/javascript",
    "proof.js": "text/javascript",
    "htmx-2.0.11.min.js": "text/javascript",
    "uplot-1.6.32.min.js": "text/javascript",
    "uplot-1.6.32.min.css": "text/css",
    "LICENSES.txt": "text/plain",
}
"""The only files served under /ui/static: vendored in the package, nothing from elsewhere."""


def _cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    """HttpOnly, SameSite=Strict, path /ui, Secure whenever the connection is TLS."""
    response.set_cookie(
        name, value, max_age=max_age, path="/ui", httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip


def _signin_page(request: Request, status: int = 200, message: str = "") -> Response:
    token = secrets.token_urlsafe(32)
    response = page(request, "signin.html", status=status, viewer=None, csrf=token, message=message,
                    spiffe=spiffe_of(request))  # fmt: skip
    _cookie(request, response, SIGNIN_COOKIE, token, 600)
    return response


@router.get("/signin")
def signin_form(request: Request) -> Response:
    return _signin_page(request)


@router.post("/signin")
async def signin(request: Request) -> Response:
    """Check the token (fresh, not from a cache) or the connection's certificate, then start a session."""
    form = await request.form(max_files=0, max_fields=MAX_FIELDS)
    posted, cookie = form.get("csrf"), request.cookies.get(SIGNIN_COOKIE, "")
    if not isinstance(posted, str) or not cookie or not hmac.compare_digest(posted.encode(), cookie.encode()):
        raise CsrfRefused("the sign-in form is missing its CSRF token or carries a wrong one: reload and try again")
    gateway = gateway_of(request)
    spiffe = spiffe_of(request)
    token = form.get("token")
    if isinstance(token, str) and token.strip():
        value = token.strip()
        record, reason = await anyio.to_thread.run_sync(lambda: authenticate(gateway.ws, value))
        if record is None or reason:
            await request.app.state.rejections.of_request(request, f"console sign-in: {reason}", 401)
            return _signin_page(request, 401, f"sign-in refused: {reason}")
        credential, principal = value, f"token:{record.token_id}"
    elif spiffe is not None and form.get("mtls") == "1":
        try:
            principal = gateway.principal_from_spiffe(spiffe).id
        except Unauthenticated as exc:
            await request.app.state.rejections.of_request(request, f"console sign-in: {exc.message}", 401)
            return _signin_page(request, 401, f"sign-in refused: {exc.message}")
        credential = SPIFFE_CREDENTIAL + spiffe
    else:
        raise InvalidInput("paste an mlwarden token (mlw_…) to sign in")
    lifetime = gateway.settings.console_session_seconds
    previous = request.cookies.get(COOKIE, "")

    def start() -> str:
        end_session(gateway.ws, previous)  # signing in again replaces the session this browser had
        return create_session(gateway.ws, credential, principal, timedelta(seconds=lifetime))[0]

    session_id = await anyio.to_thread.run_sync(start)
    response = secure(RedirectResponse("/ui/", status_code=303))
    _cookie(request, response, COOKIE, session_id, lifetime)
    response.delete_cookie(SIGNIN_COOKIE, path="/ui")
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    """End the session (a POST with the session's CSRF token, as every form)."""
    who = viewer(request)
    await checked_form(request, who)
    end_session(gateway_of(request).ws, who.session_id)
    response = secure(RedirectResponse("/ui/signin", status_code=303))
    response.delete_cookie(COOKIE, path="/ui")
    return response


@router.get("/static/{name}")
def static(request: Request, name: Annotated[str, Path(max_length=64)]) -> Response:
    """A vendored file by its exact name (no paths, no listing)."""
    media = STATIC.get(name)
    if media is None:
        raise NotFound(f"no static file {name}")
    data = files("mlwarden.web").joinpath("static", name).read_bytes()
    response = Response(data, media_type=media)
    secure(response).headers["Cache-Control"] = "public, max-age=3600"
    return response


fallback = APIRouter(route_class=ConsoleRoute)
"""Included last: any other path under /ui is the console's own 404 page (with its headers), not JSON."""


@fallback.get("/{rest:path}")
def no_such_page(request: Request, rest: str) -> Response:
    raise NotFound("no such console page")
