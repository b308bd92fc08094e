"""Every error leaves as ``application/problem+json`` (RFC 9457); this module is the only mapping."""

from __future__ import annotations

import math
import sqlite3
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlwarden.errors import (
    ArtifactIntegrityError,
    InvalidInput,
    MlwardenError,
    ModelNotServable,
    NotFound,
    PayloadTooLarge,
    PolicyDenied,
    RateLimited,
    StoreError,
    Unauthenticated,
    UnsafeArtifact,
    ValidationError,
    VerificationError,
)

PROBLEM = "application/problem+json"
log = structlog.get_logger("mlwarden.api")

_STATUS: list[tuple[type[MlwardenError], int, str]] = [
    (Unauthenticated, 401, "unauthenticated"),
    (PolicyDenied, 403, "forbidden"),
    (NotFound, 404, "not-found"),
    (PayloadTooLarge, 413, "payload-too-large"),
    (ValidationError, 422, "invalid-input"),
    (InvalidInput, 400, "bad-request"),
    (RateLimited, 429, "rate-limited"),
    (ModelNotServable, 503, "model-unavailable"),
    (StoreError, 503, "ledger-unavailable"),
    (ArtifactIntegrityError, 503, "model-unavailable"),
    (VerificationError, 503, "integrity-failure"),
    (UnsafeArtifact, 422, "unsafe-artifact"),
]


def problem(status: int, slug: str, detail: str, **extra: Any) -> JSONResponse:
    """A problem+json response."""
    body = {"type": f"urn:mlwarden:problem:{slug}", "title": slug.replace("-", " "), "status": status,
            "detail": detail, **extra}  # fmt: skip
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="mlwarden"'
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def from_error(exc: MlwardenError) -> JSONResponse:
    """Map one of our errors to its status."""
    for kind, status, slug in _STATUS:
        if isinstance(exc, kind):
            extra: dict[str, Any] = {}
            if isinstance(exc, ValidationError) and exc.field:
                extra["field"] = exc.field
            if isinstance(exc, PayloadTooLarge) and exc.limit is not None:
                extra["limit"] = exc.limit
            response = problem(status, slug, exc.message, **extra)
            if isinstance(exc, RateLimited):
                response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
            return response
    return problem(400, "bad-request", exc.message)


_RECORDED_HERE = (InvalidInput, NotFound)
"""Errors no layer below has recorded: denials, authentication, rate limits, refused artifacts and
tampered rows have; a ledger outage cannot be recorded (trying again would only double the wait)."""


async def _record(request: Request, reason: str, status: int) -> None:
    rejections = getattr(request.app.state, "rejections", None)
    if rejections is not None:  # every rejection is recorded: one entry, or counted in a summary if anonymous
        await rejections.of_request(request, reason, status)


def install(app: FastAPI) -> None:
    """Register the handlers: ours, FastAPI's validation, database errors, HTTP errors, and a last resort."""

    @app.exception_handler(MlwardenError)
    async def _ours(request: Request, exc: MlwardenError) -> JSONResponse:
        response = from_error(exc)
        if isinstance(exc, _RECORDED_HERE):
            await _record(request, exc.message, response.status_code)
        return response

    @app.exception_handler(SQLAlchemyError)
    @app.exception_handler(sqlite3.Error)
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        # The driver's text can hold SQL and paths: logged by class only, never sent.
        log.error("database_error", error=type(exc).__name__, path=request.url.path[:200])
        detail = "the database did not answer; nothing was changed, try again later"
        await _record(request, f"database unavailable ({type(exc).__name__})", 503)
        return problem(503, "database-unavailable", detail)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        if first.get("type") == "json_invalid":
            response = problem(400, "malformed-json", f"request body is not valid JSON: {first.get('msg', '')}")
        else:
            response = problem(422, "invalid-input", f"{where}: {first.get('msg', 'invalid')}", field=where)
        # Also those FastAPI makes before a route runs: malformed JSON is read before authentication.
        await _record(request, f"{where}: invalid request", response.status_code)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, MlwardenError):  # FastAPI wraps errors raised while it reads the body
            return await _ours(request, exc.__cause__)
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        await _record(request, slug, exc.status_code)
        return problem(exc.status_code, slug, str(exc.detail))

    @app.exception_handler(Exception)
    async def _last_resort(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled_error", error=type(exc).__name__, path=request.url.path)
        return problem(500, "internal-error", "the server failed; the request was not served")
