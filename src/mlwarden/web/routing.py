"""The console's route class: a missing session, a refusal or an error becomes a page, never JSON or a trace."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import structlog
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mlwarden.api.problems import from_error
from mlwarden.errors import InvalidInput, MlwardenError, NotFound
from mlwarden.web.auth import CsrfRefused, SignInNeeded, Viewer, check_csrf
from mlwarden.web.render import error_page, secure

log = structlog.get_logger("mlwarden.web")
SIGNIN_PATH = "/ui/signin"
MAX_FIELDS = 32


class ConsoleRoute(APIRoute):
    """Every console route: errors are mapped once, here, to the sign-in page or an error page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInNeeded:
                return secure(RedirectResponse(SIGNIN_PATH, status_code=303))
            except CsrfRefused as exc:
                return error_page(request, 403, exc.message)
            except MlwardenError as exc:
                status = from_error(exc).status_code
                if isinstance(exc, InvalidInput | NotFound):
                    await _record(request, exc.message, status)
                return error_page(request, status, exc.message)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ()))
                return error_page(request, 400, f"{where}: {first.get('msg', 'invalid')}")
            except HTTPException as exc:
                return error_page(request, exc.status_code, str(exc.detail))

        return guarded


async def _record(request: Request, reason: str, status: int) -> None:
    rejections = getattr(request.app.state, "rejections", None)
    if rejections is not None:  # as the API does: the rejection is recorded (or counted, when anonymous)
        await rejections.of_request(request, reason, status)


async def checked_form(request: Request, who: Viewer) -> FormData:
    """The POSTed form, after its CSRF token is checked (a bad one is a 403 page, nothing done)."""
    try:
        form = await request.form(max_files=0, max_fields=MAX_FIELDS)
    except (HTTPException, ValueError) as exc:
        raise InvalidInput("the form could not be read") from exc
    check_csrf(who, form.get("csrf"))
    return form


def text_field(form: FormData, name: str, *, required: bool = False, limit: int = 4000) -> str:
    """A text field of a form, stripped; too long or missing when required is an input error."""
    value = form.get(name)
    text = value.strip() if isinstance(value, str) else ""
    if required and not text:
        raise InvalidInput(f"{name} is required")
    if len(text) > limit:
        raise InvalidInput(f"{name} is longer than {limit} characters")
    return text
