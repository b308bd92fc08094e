"""Scopes: what a principal may do. Nothing is allowed that a scope does not name."""

from __future__ import annotations

from enum import StrEnum

from mlwarden.errors import InvalidInput


class Scope(StrEnum):
    """The scopes a token or an mTLS identity can hold."""

    INFERENCE_READ = "inference:read"
    FEEDBACK_WRITE = "feedback:write"
    DATA_WRITE = "data:write"
    DATA_READ = "data:read"
    MODEL_WRITE = "model:write"
    MODEL_PROMOTE = "model:promote"
    AUDIT_READ = "audit:read"
    ADMIN = "admin"


def parse_scopes(values: list[str] | tuple[str, ...]) -> tuple[Scope, ...]:
    """Scopes from text; an unknown scope is an input error listing the known ones."""
    out: list[Scope] = []
    for value in values:
        try:
            out.append(Scope(value))
        except ValueError as exc:
            known = ", ".join(s.value for s in Scope)
            raise InvalidInput(f"unknown scope {value!r}; known scopes: {known}") from exc
    if not out:
        raise InvalidInput("at least one scope is required")
    return tuple(dict.fromkeys(out))
