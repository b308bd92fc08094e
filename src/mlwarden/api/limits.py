"""Limits applied before a route runs: body size per route, and a budget per source address."""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette import types as asgi

from mlwarden.api import problems
from mlwarden.config import Settings
from mlwarden.errors import PayloadTooLarge
from mlwarden.identity.ratelimit import TokenBuckets

OnReject = Callable[[asgi.Scope, str, int], Awaitable[None]]
"""Records a refusal made before authentication: (ASGI scope, reason, status)."""

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

_MODEL_UPLOAD = re.compile(r"^/v1/models/[^/]+/versions/?$")
_BATCH_UPLOAD = re.compile(r"^/v1/datasets/[^/]+/batches/?$")


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """Byte limits per kind of route: predictions (and other JSON bodies), model uploads, batch uploads."""

    json: int
    predict: int
    model_upload: int
    batch_upload: int

    @classmethod
    def from_settings(cls, settings: Settings) -> BodyLimits:
        """Limits from ``MLWARDEN_MAX_BODY_BYTES[_PREDICT]`` and ``MLWARDEN_MAX_UPLOAD_BYTES_{MODEL,BATCH}``."""
        predict = settings.max_body_bytes_predict
        return cls(
            json=settings.max_body_bytes,
            predict=settings.max_body_bytes if predict is None else predict,
            model_upload=settings.max_upload_bytes_model,
            batch_upload=settings.max_upload_bytes_batch,
        )

    def for_request(self, method: str, path: str) -> tuple[int, str]:
        """The limit for one request and the setting that sets it."""
        if method != "POST":
            return self.json, "MLWARDEN_MAX_BODY_BYTES"
        if path.endswith("/predict"):  # first: the busiest route (no upload path ends so)
            return self.predict, "MLWARDEN_MAX_BODY_BYTES_PREDICT"
        if _MODEL_UPLOAD.match(path):
            return self.model_upload, "MLWARDEN_MAX_UPLOAD_BYTES_MODEL"
        if _BATCH_UPLOAD.match(path):
            return self.batch_upload, "MLWARDEN_MAX_UPLOAD_BYTES_BATCH"
        return self.json, "MLWARDEN_MAX_BODY_BYTES"


def too_large(limit: int, setting: str) -> str:
    """The 413 message: names the limit and the setting that raises it."""
    return f"request body is over the limit of {limit} bytes for this route ({setting})"


class BodyLimit:
    """Refuse bodies over the route's limit: early from Content-Length, or while streaming."""

    def __init__(self, app: asgi.ASGIApp, limits: BodyLimits, on_reject: OnReject) -> None:
        self.app = app
        self.limits = limits
        self.on_reject = on_reject

    async def __call__(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = self.limits.for_request(scope.get("method", ""), scope.get("path", ""))
        for key, value in scope.get("headers", []):
            if key == b"content-length" and (not value.isdigit() or int(value) > limit):
                detail = too_large(limit, setting)
                await self.on_reject(scope, detail, 413)
                await problems.problem(413, "payload-too-large", detail, limit=limit)(scope, receive, send)
                return
        seen = 0

        async def limited() -> asgi.Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise PayloadTooLarge(too_large(limit, setting), limit=limit)
            return message

        await self.app(scope, limited, send)


def source_of(scope: asgi.Scope) -> str:
    """The client address uvicorn reports (after ``--proxy-headers``, when configured), or ``unknown``."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class SourceGuard:
    """Refuse a source address whose budget of unauthenticated rejections is spent (429, before anything else).

    Each rejection of an unauthenticated request spends from its source's bucket; a request
    from a source with an empty bucket is refused at the door, before authentication or body
    parsing. Authenticated traffic spends nothing here (the per-principal limit applies).
    """

    def __init__(self, app: asgi.ASGIApp, buckets: TokenBuckets, on_reject: OnReject) -> None:
        self.app = app
        self.buckets = buckets
        self.on_reject = on_reject

    async def __call__(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        if scope["type"] != "http" or scope.get("path") in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        wait = self.buckets.wait(source_of(scope))
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        detail = f"too many rejected requests from this address: limit of {self.buckets.rate:g}/s exceeded"
        await self.on_reject(scope, detail, 429)
        response = problems.problem(429, "rate-limited", detail)
        response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
        await response(scope, receive, send)
