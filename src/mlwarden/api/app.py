"""The FastAPI application: thin routes over :class:`mlwarden.api.gateway.Gateway`."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
import structlog
from fastapi import Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette import types as asgi

from mlwarden import __version__
from mlwarden.api import audit, problems
from mlwarden.api.alerts import router as alerts_router
from mlwarden.api.gateway import FEEDBACK_KINDS, Gateway
from mlwarden.api.inputs import check_value
from mlwarden.api.limits import BodyLimit, BodyLimits, SourceGuard
from mlwarden.api.metrics import CONTENT_TYPE_LATEST, GatewayMetrics
from mlwarden.api.predict_route import PredictShortcut, admit, principal_of
from mlwarden.api.predict_route import predict as predict_rows
from mlwarden.api.rejections import Rejections, RejectionSummary
from mlwarden.api.uploads import batch_suffix, card_text, expiry, upload_name
from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.data.ingest import ingest
from mlwarden.errors import (
    GateFailed,
    InvalidInput,
    MlwardenError,
    PolicyDenied,
)
from mlwarden.identity.policy import Principal
from mlwarden.identity.ratelimit import TokenBuckets
from mlwarden.identity.scopes import Scope, effective_grant, parse_grant, parse_scopes
from mlwarden.identity.tokens import create_token, list_tokens, revoke_token, token_json
from mlwarden.ledger.async_append import AsyncAppender, EntryAppender
from mlwarden.ledger.duties import DutySettings, start_duties
from mlwarden.ledger.log import Log
from mlwarden.ledger.notes import Checkpoint
from mlwarden.ledger.writer_client import WriterClient
from mlwarden.monitor.metrics import watch_exposition
from mlwarden.monitor.outbox_metrics import OutboxCollector
from mlwarden.registry.governance import approve, promote, rollback
from mlwarden.registry.models import register_model
from mlwarden.subjects.decisions import decision_payloads
from mlwarden.subjects.erasure import erase_data_subject
from mlwarden.subjects.retention import register_retention
from mlwarden.trust.follower import follower
from mlwarden.web import console_router
from mlwarden.workspace import open_workspace

log = structlog.get_logger("mlwarden.api")


class PredictBody(BaseModel):
    inputs: list[Any] = Field(
        min_length=1, description="Rows: objects keyed by feature name, or lists in signature order."
    )
    subjects: list[str] | None = Field(
        default=None,
        description="Optional data subject of each row (one per row): its inputs and outputs are sealed under the "
        "subject's keys, erased with `POST /v1/privacy/erase`.",
    )


class FeedbackBody(BaseModel):
    decision_id: str = Field(min_length=1, max_length=64)
    kind: Literal["incorrect", "suspicious", "other"]
    expected: Any = None
    comment: str | None = Field(default=None, max_length=4000)


class EraseBody(BaseModel):
    subject: str = Field(min_length=1, max_length=256, description="The data subject named in predict requests.")
    reason: str = Field(min_length=1, max_length=500, description="Why (recorded in the erasure entry).")


class PromoteBody(BaseModel):
    stage: Literal["candidate", "staging", "production", "archived"]


class ApproveBody(BaseModel):
    comment: str | None = Field(default=None, max_length=4000)


class TokenBody(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    scopes: list[str] = Field(min_length=1, max_length=16)
    models: list[str] | None = Field(
        default=None, min_length=1, max_length=256, description="Omit for every model; an empty list is refused."
    )
    expires: str | None = Field(default=None, max_length=16)
    grant: list[str] | None = Field(
        default=None,
        max_length=16,
        description="With admin: the scopes the new token may hand out (omit for the default; within yours).",
    )


class Measure:
    """Count requests by route and status and time them (plain ASGI: no per-request task overhead)."""

    def __init__(self, app: asgi.ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record(message: asgi.Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            count, latency = self.metrics.answered(getattr(scope.get("route"), "path", "unmatched"), status)
            count.inc()
            latency.observe(time.perf_counter() - started)


def _principal(request: Request) -> Principal:
    return principal_of(request.app.state.gateway, request.scope)


async def authenticated(request: Request) -> Principal:
    """Dependency: the caller, after authentication and the rate limit (both recorded when they fail)."""
    return await admit(request.app.state, request.scope)


Caller = Annotated[Principal, Depends(authenticated)]


@contextmanager
def _counting_denials(request: Request) -> Iterator[None]:
    """Count the policy denials raised inside (the gateway has already recorded them)."""
    try:
        yield
    except PolicyDenied:
        request.app.state.metrics.denied("policy").inc()
        raise


def _authorize(request: Request, principal: Principal, scope: Scope, resource: str, model: str | None = None) -> Any:
    gateway: Gateway = request.app.state.gateway
    with _counting_denials(request):
        return gateway.authorize(principal, scope, resource, model)


def _appender(settings: Settings, ledger: Log) -> EntryAppender:
    """Through ``serve``'s ledger writer when it runs one, else an in-process group commit."""
    if settings.ledger_writer_socket is not None:
        return WriterClient(settings.ledger_writer_socket, timeout=settings.ledger_writer_timeout_seconds)
    return AsyncAppender(ledger)


def create_app(options: WorkspaceOptions, settings: Settings | None = None) -> FastAPI:
    """The gateway for one workspace."""
    settings = settings or Settings()
    rejections = Rejections(
        summary=RejectionSummary(seconds=settings.rejection_summary_seconds, events=settings.rejection_summary_events,
                                 top=settings.rejection_summary_top),
        sources=TokenBuckets(settings.anon_rate_limit, settings.anon_rate_burst),
    )  # fmt: skip

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ws = open_workspace(options)
        gateway = Gateway(ws, settings, TokenBuckets(settings.rate_limit, settings.rate_burst))
        ws.log.sign_interval = settings.ledger_sign_interval_seconds
        ws.log.checkpoint_wal_in_background()
        gateway.appender = _appender(settings, ws.log)
        app.state.gateway = gateway
        rejections.gateway = gateway
        gateway.current_policy()
        state = follower(ws)
        state.refresh()  # prove the ledger (from the last signed snapshot) before serving anything
        interval = min(settings.auth_cache_seconds, settings.model_refresh_seconds) / 2
        if interval > 0:
            state.follow(interval)  # keeps the proven state fresh off the request path
        app.state.duties = start_duties(options.database_url, ws.log.checkpoint, DutySettings())  # writer lease
        register_retention(app.state.duties, ws)  # erases expired inputs (policy privacy.inputs_retention_days)
        app.state.metrics.add_collector(OutboxCollector(ws.engine))  # alert outbox depth and age, by sink
        if settings.gc_freeze:
            # Everything loaded so far (models, libraries) lives as long as the process: keep
            # it out of the collector's way, and collect young objects less often. Without this,
            # full collections over that heap set the p99 latency.
            gc.collect()
            gc.freeze()
            gc.set_threshold(50_000, 50, 100)
        log.info("gateway_started", workspace=str(options.paths.home), ledger_size=ws.log.size())
        summaries = asyncio.create_task(rejections.summary.run(rejections.record_summary))
        try:
            yield
        finally:
            summaries.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await summaries
            await rejections.summary.flush(rejections.record_summary)  # counted rejections are recorded at shutdown
            gateway.appender.close()
            app.state.duties.close()  # releases the writer lease: another replica takes over at once
            ws.close()

    app = FastAPI(title="mlwarden gateway", version=__version__, lifespan=lifespan)
    app.include_router(alerts_router)
    app.state.metrics = GatewayMetrics()
    app.state.rejections = rejections
    problems.install(app)
    app.include_router(console_router())  # the web console at /ui
    app.include_router(audit.router)

    async def reject_early(scope: asgi.Scope, detail: str, status: int) -> None:
        """Before authentication nobody is known: counted in the window summary, no write of its own."""
        app.state.metrics.denied("source_limited" if status == 429 else "too_large").inc()
        rejections.anonymous(scope, detail, status)

    @app.post("/v1/models/{name}/predict", summary="Predict with the production version (scope inference:read)")
    async def predict(name: str, body: PredictBody, request: Request, principal: Caller) -> JSONResponse:
        # Answers what PredictShortcut hands over (unusual bodies); describes the route in the OpenAPI document.
        return JSONResponse(
            await predict_rows(request.app.state, request.scope, principal, name, body.inputs, body.subjects)
        )

    predict_route = next(r for r in app.router.routes if isinstance(r, APIRoute) and r.endpoint is predict)
    app.add_middleware(PredictShortcut, state=app.state, route=predict_route, handlers=app.exception_handlers)
    app.add_middleware(BodyLimit, limits=BodyLimits.from_settings(settings), on_reject=reject_early)
    app.add_middleware(SourceGuard, buckets=rejections.sources, on_reject=reject_early)
    app.add_middleware(Measure, metrics=app.state.metrics)

    @app.post("/v1/feedback", summary="Flag a decision (scope feedback:write)")
    def feedback(body: FeedbackBody, request: Request, principal: Caller) -> dict[str, Any]:
        gateway: Gateway = request.app.state.gateway
        with _counting_denials(request):
            decision, index, entry = gateway.authorize_decision(principal, Scope.FEEDBACK_WRITE, body.decision_id)
        if body.kind not in FEEDBACK_KINDS:  # pragma: no cover - pydantic's Literal already refuses it
            raise InvalidInput("kind must be incorrect, suspicious or other")
        check_value(body.expected, "expected")
        return gateway.feedback(
            principal, body.decision_id, body.kind, body.expected, body.comment, decision, index, entry
        )

    @app.get("/v1/models/{name}/feedback", summary="Feedback on a model's decisions (scope audit:read)")
    def model_feedback(
        name: str, request: Request, principal: Caller, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> dict[str, Any]:
        gateway: Gateway = request.app.state.gateway
        gateway.record_allow(_authorize(request, principal, Scope.AUDIT_READ, f"model:{name}", name))
        entries = [e.parse().to_json() for e in gateway.ws.log.find("feedback", f"model:{name}:", limit=limit)]
        return {"model": name, "feedback": entries}

    @app.get("/v1/decisions/{decision_id}", summary="A decision's ledger entry and inclusion proof (scope audit:read)")
    def get_decision(decision_id: str, request: Request, principal: Caller) -> dict[str, Any]:
        gateway: Gateway = request.app.state.gateway
        with _counting_denials(request):
            decision, index, entry = gateway.authorize_decision(principal, Scope.AUDIT_READ, decision_id)
        gateway.record_allow(decision)
        note = gateway.ws.log.head_note()
        checkpoint = Checkpoint.open(note, gateway.ws.log.verifier)
        proof = gateway.ws.log.inclusion_proof(index, checkpoint.size)
        payloads = decision_payloads(gateway.ws, entry, decision_id)
        return {"decision_id": decision_id, "entry": entry, **payloads, "inclusion_proof": proof.to_json(),
                "checkpoint": note}  # fmt: skip

    @app.post("/v1/privacy/erase", summary="Erase a data subject's personal data (scope privacy:erase)")
    def erase(body: EraseBody, request: Request, principal: Caller) -> dict[str, Any]:
        gateway: Gateway = request.app.state.gateway
        _authorize(request, principal, Scope.PRIVACY_ERASE, "privacy")
        return erase_data_subject(gateway.ws, body.subject, reason=body.reason, principal=principal.id)

    @app.get("/v1/ledger/checkpoint", summary="The latest signed checkpoint (scope audit:read)")
    def checkpoint(request: Request, principal: Caller) -> dict[str, Any]:
        gateway: Gateway = request.app.state.gateway
        gateway.record_allow(_authorize(request, principal, Scope.AUDIT_READ, "ledger"))
        note = gateway.ws.log.head_note()
        cp = Checkpoint.open(note, gateway.ws.log.verifier)
        return {"note": note, "size": cp.size, "root_hash": cp.root.hex(), "origin": cp.origin,
                "public_key": gateway.ws.log.verifier.vkey()}  # fmt: skip

    @app.get("/v1/ledger/proofs/inclusion/{index}", summary="Inclusion proof (scope audit:read)")
    def inclusion(
        request: Request, principal: Caller, index: int, size: Annotated[int | None, Query(ge=1)] = None
    ) -> dict[str, Any]:
        gateway: Gateway = request.app.state.gateway
        if index < 0:
            _authorize(request, principal, Scope.AUDIT_READ, "ledger")
            raise InvalidInput("index must be zero or more")
        with _counting_denials(request):
            gateway.record_allow(gateway.authorize_entry(principal, Scope.AUDIT_READ, index))
        return gateway.ws.log.inclusion_proof(index, size).to_json()

    @app.get("/v1/ledger/proofs/consistency", summary="Consistency proof (scope audit:read)")
    def consistency(
        request: Request, principal: Caller, old: Annotated[int, Query(ge=0)], new: Annotated[int, Query(ge=0)]
    ) -> dict[str, Any]:
        gateway: Gateway = request.app.state.gateway
        gateway.record_allow(_authorize(request, principal, Scope.AUDIT_READ, "ledger"))
        return gateway.ws.log.consistency_proof(old, new).to_json()

    @app.post("/v1/models/{name}/versions", status_code=201, summary="Register a model version (scope model:write)")
    async def register_version(
        name: str,
        request: Request,
        principal: Caller,
        model: Annotated[UploadFile, File(description="ONNX or skops file (pickles are refused)")],
        card: Annotated[UploadFile, File(description="Model card: Markdown with YAML front matter")],
        signature: Annotated[UploadFile | None, File(description="Optional input signature JSON")] = None,
    ) -> JSONResponse:
        gateway: Gateway = request.app.state.gateway
        await gateway.authorize_async(principal, Scope.MODEL_WRITE, f"model:{name}", name)
        filename = upload_name(model.filename)
        card_bytes = await card.read()
        card_text(card_bytes)
        uploads = {"model": (filename, await model.read()), "card": ("card.md", card_bytes)}
        if signature is not None:
            uploads["signature"] = ("signature.json", await signature.read())

        def run() -> dict[str, Any]:
            with tempfile.TemporaryDirectory(prefix="mlwarden-upload-") as tmp:
                paths = {}
                for key, (fname, data) in uploads.items():
                    paths[key] = Path(tmp) / fname
                    paths[key].write_bytes(data)
                return register_model(
                    gateway.ws,
                    name=name,
                    path=paths["model"],
                    card_path=paths["card"],
                    principal=principal.id,
                    signature_path=paths.get("signature"),
                ).to_json()

        return JSONResponse(await anyio.to_thread.run_sync(run), status_code=201)

    @app.post("/v1/models/{name}/versions/{version}/approve", summary="Approve a version (scope model:promote)")
    def approve_version(
        name: str, version: int, body: ApproveBody, request: Request, principal: Caller
    ) -> dict[str, Any]:
        gateway: Gateway = request.app.state.gateway
        _authorize(request, principal, Scope.MODEL_PROMOTE, f"model:{name}:{version}", name)
        if version < 1:
            raise InvalidInput("version must be 1 or more")
        return approve(gateway.ws, name, version, principal.id, body.comment)

    @app.post("/v1/models/{name}/versions/{version}/promote", summary="Run the gates and promote (scope model:promote)")
    def promote_version(
        name: str, version: int, body: PromoteBody, request: Request, principal: Caller
    ) -> JSONResponse:
        gateway: Gateway = request.app.state.gateway
        _authorize(request, principal, Scope.MODEL_PROMOTE, f"model:{name}:{version}", name)
        if version < 1:
            raise InvalidInput("version must be 1 or more")
        try:
            return JSONResponse(promote(gateway.ws, name, version, body.stage, principal.id))
        except GateFailed as exc:
            gates = [r.to_json() for r in exc.results]
            return problems.problem(409, "gates-failed", exc.message, gates=gates)

    @app.post("/v1/models/{name}/rollback", summary="Serve the previous production version (scope model:promote)")
    def rollback_model(name: str, request: Request, principal: Caller) -> dict[str, Any]:
        gateway: Gateway = request.app.state.gateway
        _authorize(request, principal, Scope.MODEL_PROMOTE, f"model:{name}", name)
        return rollback(gateway.ws, name, principal.id)

    @app.post("/v1/datasets/{name}/batches", summary="Ingest a batch: contract + screening (scope data:write)")
    async def ingest_batch(
        name: str,
        request: Request,
        principal: Caller,
        filename: str = "batch.csv",
        subject_column: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    ) -> JSONResponse:
        gateway: Gateway = request.app.state.gateway
        await gateway.authorize_async(principal, Scope.DATA_WRITE, f"dataset:{name}")
        suffix = batch_suffix(filename)
        with tempfile.TemporaryDirectory(prefix="mlwarden-batch-") as tmp:
            path = Path(tmp) / f"upload{suffix}"
            with path.open("wb") as out:  # streamed to disk: the body limit was enforced on the way in
                async for chunk in request.stream():
                    out.write(chunk)
            if path.stat().st_size == 0:
                raise InvalidInput("the request body (the batch file) is empty")
            outcome = await anyio.to_thread.run_sync(
                lambda: ingest(gateway.ws, name, path, principal.id, subject_column=subject_column)
            )
        return JSONResponse(outcome, status_code=201 if outcome["status"] == "accepted" else 202)

    @app.post("/v1/admin/tokens", status_code=201, summary="Create a token; the secret is shown once (scope admin)")
    def admin_create(body: TokenBody, request: Request, principal: Caller) -> dict[str, Any]:
        gateway: Gateway = request.app.state.gateway
        _authorize(request, principal, Scope.ADMIN, "tokens")
        scopes = parse_scopes(body.scopes)
        grant = effective_grant(scopes, parse_grant(body.grant) if body.grant is not None else None)
        with _counting_denials(request):
            gateway.authorize_mint(principal, scopes, grant, body.models)
        token, record = create_token(
            gateway.ws,
            name=body.name,
            scopes=body.scopes,
            principal=principal.id,
            models=body.models,
            expires_at=expiry(body.expires),
            grant=[s.value for s in grant],
        )
        return {"token": token, **record.to_json()}

    @app.get("/v1/admin/tokens", summary="List tokens, never secrets (scope admin)")
    def admin_list(request: Request, principal: Caller) -> dict[str, Any]:
        gateway: Gateway = request.app.state.gateway
        gateway.record_allow(_authorize(request, principal, Scope.ADMIN, "tokens"))
        return {"tokens": [token_json(t, problem) for t, problem in list_tokens(gateway.ws)]}

    @app.delete("/v1/admin/tokens/{token_id}", summary="Revoke a token (scope admin)")
    def admin_revoke(token_id: str, request: Request, principal: Caller) -> dict[str, Any]:
        gateway: Gateway = request.app.state.gateway
        _authorize(request, principal, Scope.ADMIN, f"token:{token_id}")
        return revoke_token(gateway.ws, token_id, principal.id).to_json()

    @app.get("/healthz", summary="Liveness")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness: the ledger answers (and serve's ledger writer accepts entries)")
    async def readyz(request: Request) -> JSONResponse:
        gateway: Gateway = request.app.state.gateway
        try:
            size = await anyio.to_thread.run_sync(gateway.ws.log.size)
            if gateway.appender is not None:
                await gateway.appender.ready()
        except MlwardenError as exc:
            return problems.problem(503, "not-ready", exc.message)
        return JSONResponse({"status": "ready", "ledger_size": size, "lease": request.app.state.duties.status()})

    @app.get("/metrics", summary="Prometheus metrics")
    def metrics(request: Request) -> PlainTextResponse:
        metrics_: GatewayMetrics = request.app.state.metrics
        try:
            metrics_.ledger_size.set(request.app.state.gateway.ws.log.size())
        except MlwardenError:
            metrics_.ledger_outages.inc()
        body = metrics_.exposition() + watch_exposition(request.app.state.gateway.ws)
        return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)

    return app
