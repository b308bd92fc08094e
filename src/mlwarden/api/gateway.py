"""The gateway's state and the governed operations its routes call (no HTTP types in here)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from mlwarden.api.inputs import check_rows
from mlwarden.api.rejections import fit
from mlwarden.config import Settings
from mlwarden.errors import (
    IntegrityError,
    MlwardenError,
    ModelNotServable,
    NotFound,
    PayloadTooLarge,
    PolicyDenied,
    Unauthenticated,
)
from mlwarden.identity.policy import (
    EMPTY,
    Decision,
    PolicyFile,
    Principal,
    decide,
    decide_mint,
    load_policy,
    subject_model,
)
from mlwarden.identity.ratelimit import TokenBuckets
from mlwarden.identity.scopes import Scope
from mlwarden.identity.tokens import TokenRecord, authenticate
from mlwarden.ledger.async_append import EntryAppender
from mlwarden.ledger.entry import MAX_PRINCIPAL, MAX_SUBJECT, PreparedEntry
from mlwarden.ledger.kinds import recorded_refs
from mlwarden.privacy.identifiers import screen
from mlwarden.registry.models import ServedModel, load_model, production_row
from mlwarden.runtime.decision_ids import decision_ids
from mlwarden.runtime.predict import prediction_record, prediction_response
from mlwarden.subjects.expected import record_feedback
from mlwarden.subjects.free_text import PolicyReader, screen_rows
from mlwarden.subjects.privacy_policy import PrivacyPolicy
from mlwarden.subjects.sealing import check_subjects, seal_rows, seal_rows_cached
from mlwarden.trust.follower import follower
from mlwarden.trust.projection import VersionFacts
from mlwarden.workspace import Workspace

log = structlog.get_logger("mlwarden.gateway")
FEEDBACK_KINDS = ("incorrect", "suspicious", "other")


@dataclass
class Gateway:
    """Everything a gateway process holds: the workspace, caches, limits and metrics."""

    ws: Workspace
    settings: Settings
    buckets: TokenBuckets
    policy: PolicyFile = EMPTY
    _models: dict[tuple[str, int, str], ServedModel] = field(default_factory=dict)
    _production: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    _tokens: dict[str, tuple[float, TokenRecord | None, str, Principal | None]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _policy_checked: float = 0.0
    appender: EntryAppender | None = None
    _privacy: PolicyReader | None = None

    # ------------------------------------------------------------------ identity
    def principal_from_token(self, value: str) -> Principal:
        """The principal behind a bearer token (cached, principal included, for ``auth_cache_seconds``)."""
        now = time.monotonic()
        cached = self._tokens.get(value)
        if cached is None or now - cached[0] > self.settings.auth_cache_seconds:
            record, reason = authenticate(self.ws, value, max_age=self.settings.auth_cache_seconds)
            cached = (now, record, reason, _principal_of(record) if record is not None and not reason else None)
            with self._lock:
                if len(self._tokens) > 10_000:
                    self._tokens.clear()
                self._tokens[value] = cached
        _, record, reason, principal = cached
        if principal is None:
            who = f"token:{record.token_id}" if record else "anonymous"
            raise Unauthenticated(reason or "token is not valid") from _Who(who)
        return principal

    def principal_from_spiffe(self, spiffe_id: str) -> Principal:
        """The principal for a verified client certificate's SPIFFE ID, per the policy file."""
        principal = self.current_policy().principal_for(spiffe_id)
        if principal is None:
            raise Unauthenticated(f"SPIFFE ID {spiffe_id} is not in the policy") from _Who(spiffe_id)
        return principal

    def current_policy(self) -> PolicyFile:
        """The policy file, re-read at most once a second; a change is recorded in the ledger."""
        now = time.monotonic()
        if now - self._policy_checked < 1.0:
            return self.policy
        self._policy_checked = now
        fresh = load_policy(self.ws.options.paths.policy)
        if fresh.sha256 != self.policy.sha256:
            self.ws.log.append(
                kind="policy.loaded", subject="policy", body={"sha256": fresh.sha256, "bindings": len(fresh.bindings)},
                principal="system:gateway",
            )  # fmt: skip
            self.policy = fresh
        return self.policy

    def privacy_policy(self) -> PrivacyPolicy:
        """The ``privacy:`` section of the policy file, re-read at most once a second."""
        if self._privacy is None:
            self._privacy = PolicyReader(self.ws.options.paths.policy)
        return self._privacy.current()

    # ------------------------------------------------------------------ decisions
    async def record(
        self, *, kind: str, subject: str, body: dict[str, Any], principal: str, refs: tuple[str, ...] = ()
    ) -> int:
        """Durably record from the event loop (through the appender: in process, or ``serve``'s writer); the index.

        A subject or principal past the ledger's limits (a 100 KB model name in a URL) is cut to
        fit, never a reason to skip the record.
        """
        entry = PreparedEntry.build(
            kind=kind, subject=fit(subject, MAX_SUBJECT), principal=fit(principal, MAX_PRINCIPAL), body=body, refs=refs
        )
        if self.appender is None:
            return self.ws.log.append_many([entry])[0].index
        return (await self.appender.append(entry)).index

    async def authorize_async(
        self, principal: Principal | None, action: Scope, resource: str, model: str | None = None
    ) -> Decision:
        """As :meth:`authorize`, without blocking the event loop."""
        decision = decide(principal, action, resource, model)
        if not decision.allow:
            await self.record(
                kind="access.denied", subject=decision.resource, body=decision.to_json(), principal=decision.principal
            )
            raise PolicyDenied(f"{decision.reason} (action {action.value} on {resource})")
        return decision

    async def reject_async(self, principal: str, resource: str, reason: str, status: int) -> None:
        """Record a rejection from the event loop (best effort when the ledger is down)."""
        try:
            await self.record(
                kind="request.rejected",
                subject=resource,
                body={"reason": fit(reason, 2000), "status": status},
                principal=principal,
            )
        except MlwardenError:  # the ledger (or the database under it) is down: the caller still gets its answer
            log.warning("rejection_not_recorded", status=status)

    async def predict_async(
        self, principal: Principal, name: str, rows: Any, decision: Decision, subjects: Any = None
    ) -> dict[str, Any]:
        """:meth:`predict` for the event loop: inference inline, the ledger record (inputs sealed) awaited.

        Rows are sealed inline when the keys of the day they need are cached (the steady state);
        otherwise the database is needed, and the request seals in a worker thread.
        """
        if isinstance(rows, list) and len(rows) > self.settings.max_rows:
            raise PayloadTooLarge(f"at most {self.settings.max_rows} rows per request, got {len(rows)}")
        served = self.served(name)
        check_rows(rows, served.validator.names)
        checked = check_subjects(subjects, len(rows) if isinstance(rows, list) else 0)
        screen_rows(rows, self.privacy_policy().free_text)
        inputs = served.validator.validate(rows)
        outputs = served.model.predict(inputs).rows()
        decisions = decision_ids(len(outputs))
        row = served.row
        sealed = seal_rows_cached(self.ws, decisions, rows, outputs, checked)
        if sealed is None:  # a key of the day is not cached: the database finds or creates it, off the loop
            sealed = await asyncio.to_thread(seal_rows, self.ws, decisions, rows, outputs, checked)
        entry = prediction_record(
            row, decisions, sealed, principal=fit(principal.id, MAX_PRINCIPAL), access=decision.to_json()
        )
        if self.appender is None:
            index = self.ws.log.append_many([entry])[0].index
        else:
            index = (await self.appender.append(entry)).index
        return prediction_response(row, outputs, decisions, index)

    def authorize(
        self, principal: Principal | None, action: Scope, resource: str, model: str | None = None
    ) -> Decision:
        """Ask the PDP; a denial is recorded and raised, an allow is returned for the caller to record."""
        return self._enforce(decide(principal, action, resource, model))

    def _enforce(self, decision: Decision) -> Decision:
        """An allow passes through; a denial is recorded, then raised."""
        if not decision.allow:
            self.record_denial(decision)
            raise PolicyDenied(f"{decision.reason} (action {decision.action} on {decision.resource})")
        return decision

    def authorize_decision(
        self, principal: Principal, action: Scope, decision_id: str
    ) -> tuple[Decision, int, dict[str, Any]]:
        """Authorize ``action`` on a recorded decision: the scope, then the model its entry names.

        Returns the allow decision with the decision's ledger index and entry.
        """
        resource = f"decision:{decision_id}"
        self.authorize(principal, action, resource)
        index, entry = self.decision_entry(decision_id)
        return self.authorize(principal, action, resource, subject_model(entry["subject"])), index, entry

    def authorize_entry(self, principal: Principal, action: Scope, index: int) -> Decision:
        """Authorize reading about ledger entry ``index``: the scope, then the model its subject names."""
        self.authorize(principal, action, "ledger")
        size = self.ws.log.size()
        if index >= size:  # before any query: an index past SQL's integer range is an answer, not a crash
            raise NotFound(f"ledger entry {index} is not in a log of size {size}")
        entry, _proof = self.ws.log.verified_entry(index)  # the text proven against the signed head, not a column
        model = subject_model(entry.subject)
        return self.authorize(principal, action, f"ledger:{index}", model)

    def authorize_mint(
        self, principal: Principal, scopes: Iterable[Scope], grant: Iterable[Scope], models: Iterable[str] | None
    ) -> Decision:
        """May ``principal`` create a token with these scopes, grant and models? A denial is recorded and raised."""
        return self._enforce(decide_mint(principal, scopes, grant, models))

    def record_denial(self, decision: Decision) -> None:
        """Every rejection is a ledger entry."""
        self.ws.log.append(
            kind="access.denied", subject=fit(decision.resource, MAX_SUBJECT), body=decision.to_json(),
            principal=fit(decision.principal, MAX_PRINCIPAL),
        )  # fmt: skip

    def record_allow(self, decision: Decision) -> int:
        """Record an allowed read (proofs, decisions, checkpoints, admin)."""
        return self.ws.log.append(
            kind="access.allowed", subject=fit(decision.resource, MAX_SUBJECT), body=decision.to_json(),
            principal=fit(decision.principal, MAX_PRINCIPAL),
        ).index  # fmt: skip

    def take(self, principal: Principal) -> None:
        """Spend from the principal's rate bucket."""
        self.buckets.take(principal.id)

    # ------------------------------------------------------------------ models
    def served(self, name: str) -> ServedModel:
        """The production version of ``name``, loaded once per (version, sha); re-checked every second."""
        now = time.monotonic()
        cached = self._production.get(name)
        if cached is None or now - cached[0] > self.settings.model_refresh_seconds:
            cached = (now, self._production_now(name))
            self._production[name] = cached
        current = cached[1]
        key = (name, current["version"], current["sha256"])
        model = self._models.get(key)
        if model is None:
            with self._lock:
                model = self._models.get(key)
                if model is None:
                    model = load_model(self.ws, name, current["version"], "system:gateway")
                    self._models = {k: v for k, v in self._models.items() if k[0] != name}
                    self._models[key] = model
        return model

    def _production_now(self, name: str) -> dict[str, Any]:
        """What to serve for ``name``: the version the verified ledger state puts in production.

        The stage column only has to agree: a row set to production by SQL (or a state row
        changed in any way) is refused with 503 and recorded, never served.
        """
        follow = follower(self.ws)
        facts = follow.state(self.settings.model_refresh_seconds).production(name)
        row = production_row(self.ws, name)
        if _disagree(facts, row):
            facts = follow.refresh().production(name)  # promoted, archived or rolled back since the last refresh?
        if row is None and facts is None:
            raise NotFound(f"model {name} has no production version")
        if facts is None or row is None or _disagree(facts, row):
            marked = row["version"] if row is not None else None
            self.ws.log.append(
                kind="model.stage_tampered",
                subject=f"model:{name}:{marked if marked is not None else facts.version if facts else 0}",
                body={"stage": "production", "row_version": marked,
                      "ledger_says": None if facts is None else facts.version,
                      "ledger_index": None if facts is None else facts.stage_index},
                principal="system:gateway",
            )  # fmt: skip
            ledger = "no version" if facts is None else f"v{facts.version} (entry {facts.stage_index})"
            database = "(no version)" if marked is None else f"v{marked}"
            raise ModelNotServable(
                f"model {name} {database} is marked production in the database, but no gated promotion of it is "
                f"in force in the ledger, which puts {ledger} in production: not served"
            )
        return {"version": facts.version, "sha256": facts.sha256, "stage_index": facts.stage_index}

    # ------------------------------------------------------------------ feedback and audit
    def decision_entry(self, decision_id: str) -> tuple[int, dict[str, Any]]:
        """The ledger index and entry that recorded ``decision_id``, proven against the signed head."""
        index = self.ws.log.find_ref(decision_id)
        if index is None:
            raise NotFound(f"decision {decision_id} is not in the ledger")
        entry, _proof = self.ws.log.verified_entry(index)
        if entry.kind != "prediction" or decision_id not in recorded_refs(entry.kind, entry.body):
            self.ws.log.append(
                kind="ledger.index_tampered", subject=f"decision:{decision_id}",
                body={"ref": decision_id, "points_at": index, "problem": "the entry does not record this decision"},
                principal="system:gateway",
            )  # fmt: skip
            raise IntegrityError(
                f"decision {decision_id}: the reference points at entry {index}, which does not record it", index=index
            )
        return index, entry.to_json()

    def feedback(self, principal: Principal, decision_id: str, kind: str, expected: Any, comment: str | None,
                 decision: Decision, index: int, entry: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
        """Record feedback on a decision already found and proven by :meth:`authorize_decision`.

        The comment is free text kept in the ledger: identifiers in it are masked, or the feedback
        refused, per ``privacy.free_text``. The ``expected`` value is sealed: the entry holds its
        commitment, the value is encrypted under the decision's subject's key (or one of its own).
        """
        if comment:
            comment = screen(comment, self.privacy_policy().free_text)
        feedback_id = str(uuid.uuid4())
        body = {
            "feedback_id": feedback_id,
            "decision_id": decision_id,
            "decision_index": index,
            "kind": kind,
            "comment": comment,
            "access": decision.to_json(),
        }
        recorded = record_feedback(self.ws, subject=entry["subject"], principal=principal.id, body=body,
                                   expected=expected)  # fmt: skip
        return {"feedback_id": feedback_id, "decision_id": decision_id, "ledger_index": recorded}


def _principal_of(record: TokenRecord) -> Principal:
    models = frozenset(record.models) if record.models is not None else None
    return Principal(f"token:{record.token_id}", "token", frozenset(record.scopes), models, record.name,
                     frozenset(record.grant))  # fmt: skip


def _disagree(facts: VersionFacts | None, row: dict[str, Any] | None) -> bool:
    """Whether the ledger's production version and the row marked production differ (either may be None)."""
    if facts is None or row is None:
        return (facts is None) != (row is None)
    return (facts.version, facts.sha256) != (row["version"], row["sha256"])


class _Who(Exception):
    """Carries the (non-secret) principal id of a failed authentication to the recorder."""

    def __init__(self, who: str) -> None:
        super().__init__(who)
        self.who = who


def who_failed(exc: BaseException) -> str:
    """The principal id attached to an authentication failure, or ``anonymous``."""
    cause = exc.__cause__
    return cause.who if isinstance(cause, _Who) else "anonymous"
