"""Rendering console pages: the Jinja2 environment (autoescaped), the security headers, the error page."""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""Only the vendored files run: no inline script, no inline style, nothing from elsewhere, never in a frame."""

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@cache
def environment() -> jinja2.Environment:
    """Templates from the package; every value escaped (``autoescape`` on for every template)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("mlwarden.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def secure(response: Response) -> Response:
    """Add the console's security headers to a response."""
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` with the viewer's navigation, securely headed."""
    text = environment().get_template(template).render(request_path=request.url.path, **context)
    response = HTMLResponse(text, status_code=status)
    secure(response)
    return response


def error_page(request: Request, status: int, message: str, viewer: Any = None) -> HTMLResponse:
    """The one error page: what was refused, never a stack trace."""
    return page(request, "error.html", status=status, viewer=viewer, status_code=status, message=message)
