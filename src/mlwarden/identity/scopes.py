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
    PRIVACY_ERASE = "privacy:erase"
    ALERT_ACK = "alert:ack"
    ADMIN = "admin"


DEFAULT_GRANT: tuple[Scope, ...] = (Scope.INFERENCE_READ, Scope.FEEDBACK_WRITE, Scope.DATA_READ, Scope.AUDIT_READ)
"""What an ``admin`` token created without an explicit grant may hand out: scopes that use
and read, never those that change what is served or trained on, nor ``admin`` itself."""


def _parse(values: list[str] | tuple[str, ...], what: str) -> tuple[Scope, ...]:
    out: list[Scope] = []
    for value in values:
        try:
            out.append(Scope(value))
        except ValueError as exc:
            known = ", ".join(s.value for s in Scope)
            raise InvalidInput(f"unknown {what} {value!r}; known scopes: {known}") from exc
    return tuple(dict.fromkeys(out))


def parse_scopes(values: list[str] | tuple[str, ...]) -> tuple[Scope, ...]:
    """Scopes from text; an unknown scope is an input error listing the known ones."""
    out = _parse(values, "scope")
    if not out:
        raise InvalidInput("at least one scope is required")
    return out


def parse_grant(values: list[str] | tuple[str, ...]) -> tuple[Scope, ...]:
    """The scopes an ``admin`` principal may hand out; empty means it may mint no token."""
    return _parse(values, "grant scope")


def effective_grant(scopes: tuple[Scope, ...], grant: tuple[Scope, ...] | None) -> tuple[Scope, ...]:
    """What a principal holding ``scopes`` may grant: its explicit grant, else :data:`DEFAULT_GRANT` for ``admin``.

    A grant is only meaningful with ``admin`` (only admins mint tokens), so asking for one without
    it is an input error rather than a silent no-op.
    """
    if Scope.ADMIN not in scopes:
        if grant:
            raise InvalidInput("a grant needs the admin scope: only admin tokens create tokens")
        return ()
    return DEFAULT_GRANT if grant is None else grant
