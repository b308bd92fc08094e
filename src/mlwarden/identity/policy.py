"""The policy decision point: one function decides every request, and denies by default.

Principals come from API tokens or mTLS certificates. mTLS identities get their scopes
and models from the workspace policy file, in the spirit of an Istio AuthorizationPolicy::

    spiffe:
      - id: spiffe://example.org/ns/scoring/sa/batch
        scopes: [inference:read]
        models: [credit-risk]        # omit for every model; [] is no model
      - id: spiffe://example.org/ns/ops/sa/token-issuer
        scopes: [admin]
        grant: [inference:read]      # what it may put in tokens it creates (default: DEFAULT_GRANT)

Resources that hold a model's data (its predictions, their decisions, feedback and proofs)
name the model to :func:`decide`, so a model-restricted principal is held to its models on
every route, not only on predict.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlwarden.errors import ConfigError, InvalidInput
from mlwarden.identity.scopes import Scope, effective_grant, parse_grant, parse_scopes

SPIFFE_PREFIX = "spiffe://"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: ``token:<id>``, a SPIFFE ID, or ``local:<user>``."""

    id: str
    kind: str
    scopes: frozenset[Scope]
    models: frozenset[str] | None = None
    name: str = ""
    grant: frozenset[Scope] = frozenset()


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer, with the reason, for the ledger."""

    allow: bool
    reason: str
    principal: str
    action: str
    resource: str

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": "allow" if self.allow else "deny", "reason": self.reason, "principal": self.principal,
            "action": self.action, "resource": self.resource,
        }  # fmt: skip


def decide(principal: Principal | None, action: Scope, resource: str, model: str | None = None) -> Decision:
    """Allow only when the principal holds the scope and, for a model, may use that model."""
    who = principal.id if principal else "anonymous"
    if principal is None:
        return Decision(False, "not authenticated", who, action.value, resource)
    if action not in principal.scopes:
        return Decision(False, f"missing scope {action.value}", who, action.value, resource)
    if model is not None and principal.models is not None and model not in principal.models:
        allowed = ", ".join(sorted(principal.models)) or "none"
        return Decision(False, f"limited to models: {allowed}", who, action.value, resource)
    return Decision(True, f"scope {action.value}", who, action.value, resource)


def subject_model(subject: str) -> str | None:
    """The model a ledger subject belongs to (``model:<name>`` or ``model:<name>:<version>``), else None."""
    kind, sep, rest = subject.partition(":")
    if kind != "model" or not sep:
        return None
    return rest.partition(":")[0]


def decide_mint(
    principal: Principal | None, scopes: Iterable[Scope], grant: Iterable[Scope], models: Iterable[str] | None
) -> Decision:
    """Allow creating a token only within the creator's own grant and model restriction.

    Every scope of the new token and every scope of its grant must be grantable by the creator
    (so ``admin`` with a wider grant can never be minted), and a model-restricted creator can
    only create tokens restricted to some of its own models.
    """
    decision = decide(principal, Scope.ADMIN, "tokens")
    if principal is None or not decision.allow:
        return decision
    grantable = ", ".join(sorted(s.value for s in principal.grant)) or "none"
    for what, wanted in (("scope", scopes), ("grant scope", grant)):
        for scope in wanted:
            if scope not in principal.grant:
                reason = f"{what} {scope.value} is not grantable by {principal.id} (grantable: {grantable})"
                return Decision(False, reason, principal.id, Scope.ADMIN.value, "tokens")
    if principal.models is not None:
        limited = ", ".join(sorted(principal.models)) or "none"
        if models is None:
            reason = f"a token for every model is not grantable by a principal limited to models: {limited}"
            return Decision(False, reason, principal.id, Scope.ADMIN.value, "tokens")
        for model in models:
            if model not in principal.models:
                reason = f"model {model} is not grantable by a principal limited to models: {limited}"
                return Decision(False, reason, principal.id, Scope.ADMIN.value, "tokens")
    return Decision(True, "within the creator's grant", principal.id, Scope.ADMIN.value, "tokens")


@dataclass(frozen=True, slots=True)
class SpiffeBinding:
    """Scopes and models granted to one SPIFFE ID."""

    spiffe_id: str
    scopes: tuple[Scope, ...]
    models: tuple[str, ...] | None
    grant: tuple[Scope, ...] = ()


@dataclass(frozen=True, slots=True)
class PolicyFile:
    """The parsed workspace policy (only the parts the gateway uses)."""

    bindings: tuple[SpiffeBinding, ...]
    sha256: str
    raw: dict[str, Any]

    def principal_for(self, spiffe_id: str) -> Principal | None:
        """The principal for a verified SPIFFE ID, or None when the policy does not know it."""
        for binding in self.bindings:
            if binding.spiffe_id == spiffe_id:
                models = frozenset(binding.models) if binding.models is not None else None
                scopes = frozenset(binding.scopes)
                return Principal(spiffe_id, "mtls", scopes, models, spiffe_id, frozenset(binding.grant))
        return None


EMPTY = PolicyFile((), hashlib.sha256(b"").hexdigest(), {})


def parse_policy(text: str) -> PolicyFile:
    """Parse policy YAML; malformed bindings are an input error naming the entry."""
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise InvalidInput(f"policy is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(raw, dict):
        raise InvalidInput("policy must be a YAML mapping")
    bindings = []
    for i, item in enumerate(raw.get("spiffe") or []):
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("id"), str)
            or not item["id"].startswith(SPIFFE_PREFIX)
        ):
            raise InvalidInput(f"policy spiffe[{i}] needs an id starting with spiffe://")
        scopes = parse_scopes([str(s) for s in item.get("scopes") or []])
        models = item.get("models")
        if models is not None and (not isinstance(models, list) or not all(isinstance(m, str) for m in models)):
            raise InvalidInput(f"policy spiffe[{i}].models must be a list of model names")
        grant = item.get("grant")
        if grant is not None and not isinstance(grant, list):
            raise InvalidInput(f"policy spiffe[{i}].grant must be a list of scopes")
        try:
            granted = effective_grant(scopes, parse_grant([str(s) for s in grant]) if grant is not None else None)
        except InvalidInput as exc:
            raise InvalidInput(f"policy spiffe[{i}]: {exc.message}") from exc
        bindings.append(SpiffeBinding(item["id"], scopes, tuple(models) if models is not None else None, granted))
    return PolicyFile(tuple(bindings), hashlib.sha256(text.encode()).hexdigest(), raw)


def load_policy(path: Path) -> PolicyFile:
    """The workspace policy, or an empty one (which grants nothing) when there is no file."""
    if not path.exists():
        return EMPTY
    try:
        return parse_policy(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read policy {path}: {exc}") from exc


def istio_policy(policy: PolicyFile, *, namespace: str = "mlwarden", app: str = "mlwarden-gateway") -> str:
    """The equivalent Istio AuthorizationPolicy (principals are SPIFFE IDs without the scheme)."""
    rules = []
    for binding in policy.bindings:
        principal = binding.spiffe_id.removeprefix(SPIFFE_PREFIX)
        paths = []
        if Scope.INFERENCE_READ in binding.scopes:
            models = binding.models if binding.models is not None else ("*",)
            paths += [f"/v1/models/{m}/predict" for m in models]
        if Scope.FEEDBACK_WRITE in binding.scopes:
            paths.append("/v1/feedback")
        if Scope.AUDIT_READ in binding.scopes:
            paths += ["/v1/decisions/*", "/v1/ledger/*"]
        if Scope.ADMIN in binding.scopes:
            paths.append("/v1/admin/*")
        if paths:
            rules.append({"from": [{"source": {"principals": [principal]}}], "to": [{"operation": {"paths": paths}}]})
    doc = {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": f"{app}-allow", "namespace": namespace},
        "spec": {"selector": {"matchLabels": {"app": app}}, "action": "ALLOW", "rules": rules},
    }
    return yaml.safe_dump(doc, sort_keys=False)
