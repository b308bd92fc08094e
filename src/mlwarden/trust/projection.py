"""The enforced state as a pure fold over ledger entries (no I/O).

Only entries of the kinds below change it; every other entry leaves it as it is. The
fold trusts nothing but the entry text: the caller proves that text against the signed
tree head (:mod:`mlwarden.trust.follower`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mlwarden.errors import InvalidInput
from mlwarden.ledger.entry import Entry

STATE_KINDS = frozenset(
    {
        "token.created",
        "token.revoked",
        "model.registered",
        "model.approved",
        "model.promoted",
        "model.rolled_back",
        "model.report_attached",
        "model.alias_set",
        "data.batch_quarantined",
        "data.batch_released",
        "data.batch_rejected",
    }
)
"""Entry kinds that change the enforced state."""

SCHEMA = 1


@dataclass(slots=True)
class TokenFacts:
    """A token as the ledger created it (and revoked it)."""

    token_id: str
    name: str
    scopes: tuple[str, ...]
    models: tuple[str, ...] | None
    expires: str | None
    created_by: str
    created_index: int
    grant: tuple[str, ...] | None = None
    revoked_index: int | None = None


@dataclass(slots=True)
class VersionFacts:
    """A model version: what was registered, its stage and the entry that set it, its approvals."""

    name: str
    version: int
    sha256: str
    registrant: str
    registered_index: int
    signature_sha256: str | None = None
    stage: str = "candidate"
    stage_index: int | None = None
    approvals: dict[str, int] = field(default_factory=dict)
    reports: dict[str, str] = field(default_factory=dict)
    """Attached vulnerability reports: sha256 → file name."""


@dataclass(slots=True)
class ModelFacts:
    """Per model name: the version in production, what the last production change replaced, aliases."""

    production: int | None = None
    production_index: int | None = None
    replaced: int | None = None
    aliases: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class BatchFacts:
    """A quarantined batch: who ingested it and whether it was released (by whom)."""

    batch_id: str
    dataset: str
    sha256: str
    ingested_by: str
    index: int
    released_by: str | None = None
    released_index: int | None = None
    rejected_by: str | None = None


@dataclass(slots=True)
class TrustedState:
    """Everything the gateway and the workflows enforce, as of ``size`` ledger entries."""

    size: int = 0
    tokens: dict[str, TokenFacts] = field(default_factory=dict)
    versions: dict[tuple[str, int], VersionFacts] = field(default_factory=dict)
    models: dict[str, ModelFacts] = field(default_factory=dict)
    batches: dict[str, BatchFacts] = field(default_factory=dict)

    # ------------------------------------------------------------------ queries
    def version(self, name: str, version: int) -> VersionFacts | None:
        return self.versions.get((name, version))

    def production(self, name: str) -> VersionFacts | None:
        """The version of ``name`` whose gated promotion (or rollback) to production is in force."""
        facts = self.models.get(name)
        if facts is None or facts.production is None:
            return None
        return self.versions.get((name, facts.production))

    # ------------------------------------------------------------------ the fold
    def apply(self, entry: Entry) -> None:
        """Fold one verified entry (entries must come in index order)."""
        handler = _HANDLERS.get(entry.kind)
        if handler is not None:
            handler(self, entry)

    # ------------------------------------------------------------------ snapshots
    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "size": self.size,
            "tokens": [asdict(t) for t in self.tokens.values()],
            "versions": [asdict(v) for v in self.versions.values()],
            "models": {k: asdict(v) for k, v in self.models.items()},
            "batches": [asdict(b) for b in self.batches.values()],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrustedState:
        """Rebuild a state written by :meth:`to_json`; raise :class:`InvalidInput` when it is not one."""
        try:
            if data["schema"] != SCHEMA:
                raise InvalidInput(f"state snapshot schema {data['schema']!r} is not {SCHEMA}")
            state = cls(size=int(data["size"]))
            for t in data["tokens"]:
                t["scopes"] = tuple(t["scopes"])
                t["models"] = tuple(t["models"]) if t["models"] is not None else None
                t["grant"] = tuple(t["grant"]) if t["grant"] is not None else None
                state.tokens[t["token_id"]] = TokenFacts(**t)
            for v in data["versions"]:
                state.versions[(v["name"], int(v["version"]))] = VersionFacts(**v)
            state.models = {k: ModelFacts(**v) for k, v in data["models"].items()}
            state.batches = {b["batch_id"]: BatchFacts(**b) for b in data["batches"]}
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"state snapshot is malformed: {exc}") from exc
        return state


def model_subject(subject: str) -> tuple[str, int] | None:
    """``model:NAME:VERSION`` → (NAME, VERSION); anything else → None (exact, no prefixes)."""
    parts = subject.split(":")
    if len(parts) != 3 or parts[0] != "model" or not parts[2].isdigit() or not parts[1]:
        return None
    return parts[1], int(parts[2])


def _token_created(state: TrustedState, entry: Entry) -> None:
    body = entry.body
    token_id = entry.subject.removeprefix("token:")
    if entry.subject != f"token:{token_id}" or body.get("id") != token_id or token_id in state.tokens:
        return
    models = body.get("models")
    state.tokens[token_id] = TokenFacts(
        token_id=token_id,
        name=str(body.get("name", "")),
        scopes=tuple(str(s) for s in body.get("scopes") or ()),
        models=tuple(str(m) for m in models) if isinstance(models, list) else None,
        expires=body.get("expires"),
        created_by=entry.principal,
        created_index=entry.index,
        grant=tuple(str(s) for s in body["grant"]) if isinstance(body.get("grant"), list) else None,
    )


def _token_revoked(state: TrustedState, entry: Entry) -> None:
    facts = state.tokens.get(entry.subject.removeprefix("token:"))
    if facts is not None and entry.subject == f"token:{facts.token_id}" and facts.revoked_index is None:
        facts.revoked_index = entry.index


def _registered(state: TrustedState, entry: Entry) -> None:
    key = model_subject(entry.subject)
    if key is None or key in state.versions or not isinstance(entry.body.get("sha256"), str):
        return
    signature = entry.body.get("signature_sha256")
    state.versions[key] = VersionFacts(
        name=key[0],
        version=key[1],
        sha256=entry.body["sha256"],
        registrant=entry.principal,
        registered_index=entry.index,
        signature_sha256=signature if isinstance(signature, str) else None,
    )


def _approved(state: TrustedState, entry: Entry) -> None:
    key = model_subject(entry.subject)
    facts = state.versions.get(key) if key else None
    if facts is not None and entry.body.get("sha256") == facts.sha256:
        facts.approvals.setdefault(entry.principal, entry.index)


def _report_attached(state: TrustedState, entry: Entry) -> None:
    key = model_subject(entry.subject)
    facts = state.versions.get(key) if key else None
    sha, filename = entry.body.get("sha256"), entry.body.get("filename")
    if facts is not None and isinstance(sha, str) and isinstance(filename, str):
        facts.reports.setdefault(sha, filename)


def _alias_set(state: TrustedState, entry: Entry) -> None:
    key = model_subject(entry.subject)
    facts = state.versions.get(key) if key else None
    alias = entry.body.get("alias")
    if facts is not None and isinstance(alias, str) and entry.body.get("sha256") == facts.sha256:
        state.models.setdefault(facts.name, ModelFacts()).aliases[alias] = facts.version


def _stage_changed(state: TrustedState, entry: Entry) -> None:
    key = model_subject(entry.subject)
    facts = state.versions.get(key) if key else None
    if facts is None or entry.body.get("sha256") != facts.sha256:
        return
    to = str(entry.body.get("to"))
    model = state.models.setdefault(facts.name, ModelFacts())
    gated = bool((entry.body.get("gates") or {}).get("passed"))
    if to == "production" and gated:
        previous = model.production
        if previous is not None and previous != facts.version:
            old = state.versions.get((facts.name, previous))
            if old is not None:
                old.stage, old.stage_index = "archived", entry.index
        model.production, model.production_index = facts.version, entry.index
        model.replaced = previous if previous != facts.version else model.replaced
        facts.stage, facts.stage_index = "production", entry.index
        return
    if model.production == facts.version:
        model.production, model.production_index = None, None
    facts.stage, facts.stage_index = (to if to != "production" else "candidate"), entry.index


def _quarantined(state: TrustedState, entry: Entry) -> None:
    batch_id, sha = entry.body.get("batch"), entry.body.get("sha256")
    dataset = entry.subject.removeprefix("dataset:")
    if isinstance(batch_id, str) and isinstance(sha, str) and batch_id not in state.batches:
        state.batches[batch_id] = BatchFacts(batch_id, dataset, sha, entry.principal, entry.index)


def _released(state: TrustedState, entry: Entry) -> None:
    facts = state.batches.get(str(entry.body.get("batch")))
    if facts is not None and facts.released_by is None and entry.subject == f"dataset:{facts.dataset}":
        facts.released_by, facts.released_index = entry.principal, entry.index


def _rejected(state: TrustedState, entry: Entry) -> None:
    facts = state.batches.get(str(entry.body.get("batch")))
    if facts is not None and facts.released_by is None and entry.subject == f"dataset:{facts.dataset}":
        facts.rejected_by = facts.rejected_by or entry.principal


_HANDLERS = {
    "token.created": _token_created,
    "token.revoked": _token_revoked,
    "model.registered": _registered,
    "model.approved": _approved,
    "model.promoted": _stage_changed,
    "model.rolled_back": _stage_changed,
    "model.report_attached": _report_attached,
    "model.alias_set": _alias_set,
    "data.batch_quarantined": _quarantined,
    "data.batch_released": _released,
    "data.batch_rejected": _rejected,
}
