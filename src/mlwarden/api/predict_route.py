"""The predict route as plain ASGI: no per-request dependency injection, orjson in and out.

The FastAPI operation declared in :mod:`mlwarden.api.app` stays what the OpenAPI document
describes and what every unusual request gets: :class:`PredictShortcut` (innermost
middleware, before the router) answers only the ordinary one itself (``Content-Type:
application/json``, a body orjson parses into an object whose ``inputs`` is a non-empty
list). Anything else (malformed JSON, ``NaN``, numbers beyond float range, a missing or
empty ``inputs``, another content type) is handed, body and all, to the FastAPI operation,
so its refusals are exactly those of the declared route. Both ways authenticate, rate-limit,
authorize, validate and record the same way: :func:`admit` is the one implementation of the
first two.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from starlette import types as asgi
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match

from mlwarden.api.gateway import who_failed
from mlwarden.errors import LedgerUnavailable, MlwardenError, ModelNotServable, RateLimited, StoreError, Unauthenticated
from mlwarden.identity.policy import Principal
from mlwarden.identity.scopes import Scope

if TYPE_CHECKING:
    from starlette.datastructures import State

    from mlwarden.api.gateway import Gateway
    from mlwarden.api.metrics import GatewayMetrics

_JSON_TYPES = frozenset({b"application/json", b"application/json; charset=utf-8", b"application/json;charset=utf-8"})
_JSON_HEADERS = [(b"content-type", b"application/json")]
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def header(scope: asgi.Scope, name: bytes) -> bytes | None:
    """The first value of header ``name`` (lowercase, as ASGI servers pass them), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def principal_of(gateway: Gateway, scope: asgi.Scope) -> Principal:
    """The caller: a verified client certificate's SPIFFE ID, else the bearer token (raises Unauthenticated)."""
    spiffe = scope.get("extensions", {}).get("mlwarden.spiffe_id")
    if spiffe:
        return gateway.principal_from_spiffe(spiffe)
    raw = header(scope, b"authorization")
    if not raw:
        raise Unauthenticated("missing credentials: send 'Authorization: Bearer mlw_…' or a client certificate")
    scheme, _, value = raw.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthenticated("authorization header must be 'Bearer <token>'")
    return gateway.principal_from_token(value.strip())


async def admit(state: State, scope: asgi.Scope) -> Principal:
    """Authenticate and rate-limit the caller; either failure is counted and recorded, then raised."""
    gateway: Gateway = state.gateway
    metrics: GatewayMetrics = state.metrics
    request_state: dict[str, Any] = scope.setdefault("state", {})
    try:
        principal = principal_of(gateway, scope)
    except Unauthenticated as exc:
        metrics.denied("unauthenticated").inc()
        state.rejections.anonymous(scope, exc.message, 401, claimed=who_failed(exc))  # summed, not one write each
        request_state["rejection_recorded"] = True
        raise
    request_state["principal_id"] = principal.id
    try:
        gateway.take(principal)
    except RateLimited as exc:
        metrics.denied("rate_limited").inc()
        await gateway.reject_async(principal.id, Request(scope).url.path, exc.message, 429)
        request_state["rejection_recorded"] = True
        raise
    return principal


async def predict(
    state: State, scope: asgi.Scope, principal: Principal, name: str, rows: Any, subjects: Any = None
) -> dict[str, Any]:
    """Authorize, validate, predict and record one request's rows (``subjects``: one per row, optional)."""
    gateway: Gateway = state.gateway
    metrics: GatewayMetrics = state.metrics
    try:
        decision = await gateway.authorize_async(principal, Scope.INFERENCE_READ, f"model:{name}", name)
    except MlwardenError:
        metrics.denied("policy").inc()
        raise
    try:
        result = await gateway.predict_async(principal, name, rows, decision, subjects)
    except ModelNotServable:
        raise
    except (LedgerUnavailable, StoreError):
        metrics.ledger_outages.inc()
        raise
    except MlwardenError:
        scope.setdefault("state", {})["resource"] = f"model:{name}"  # recorded (once) by the error handler
        raise
    metrics.predicted(name).inc(len(result["decision_ids"]))
    return result


def ordinary_rows(scope: asgi.Scope, body: bytes) -> tuple[list[Any], Any] | None:
    """The rows and subjects of an ordinary predict body, or None when the declared route must judge it."""
    if header(scope, b"content-type") not in _JSON_TYPES:
        return None
    if _LONG_DIGITS.search(body):
        return None  # orjson reads an integer past 64 bits as a float; the standard library keeps it exact
    try:
        payload = orjson.loads(body)  # strict: NaN, Infinity and numbers beyond float range are errors
    except orjson.JSONDecodeError:
        return None
    if type(payload) is not dict:
        return None
    rows = payload.get("inputs")
    return (rows, payload.get("subjects")) if type(rows) is list and rows else None


async def read_body(receive: asgi.Receive) -> bytes | None:
    """The whole request body, or None if the client went away (``receive`` enforces the body limit)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def replay(body: bytes, receive: asgi.Receive) -> asgi.Receive:
    """A ``receive`` that hands over ``body`` once, then the real one (for disconnects)."""
    sent = False

    async def again() -> asgi.Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return again


Handler = Callable[[Request, Any], Response | Awaitable[Response]]


class PredictShortcut:
    """Pure ASGI middleware (innermost): an ordinary predict request skips FastAPI's router and layers.

    It matches the declared route exactly as the router would, answers through :func:`admit` and
    :func:`predict`, and turns a raised error into the response the app's registered exception
    handler gives (the same problem+json, recorded the same way). Everything else, including an
    unusual predict body, goes on to the app unchanged.
    """

    def __init__(self, app: asgi.ASGIApp, *, state: State, route: BaseRoute,
                 handlers: Mapping[Any, Handler]) -> None:  # fmt: skip
        self.app = app
        self.state = state
        self.route = route
        self.handlers = handlers

    def _handler(self, exc: Exception) -> Handler | None:
        for kind in type(exc).__mro__:
            if kind is Exception:
                return None  # the last resort stays with the server-error middleware, as for every route
            if kind in self.handlers:
                return self.handlers[kind]
        return None

    async def __call__(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        match, child = self.route.matches(scope)
        if match is not Match.FULL:
            await self.app(scope, receive, send)
            return
        try:
            body = await read_body(receive)  # the body limit raises in here
            if body is None:
                return  # nobody is left to answer
            ordinary = ordinary_rows(scope, body)
            if ordinary is None:
                await self.app(scope, replay(body, receive), send)
                return
            scope.update(child)  # route and path parameters, as the router sets them (the metrics label reads them)
            principal = await admit(self.state, scope)
            rows, subjects = ordinary
            result = await predict(self.state, scope, principal, scope["path_params"]["name"], rows, subjects)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            response = handler(Request(scope, receive), exc)
            if inspect.isawaitable(response):
                response = await response
            await response(scope, receive, send)
            return
        content = orjson.dumps(result)
        headers = [*_JSON_HEADERS, (b"content-length", str(len(content)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})
