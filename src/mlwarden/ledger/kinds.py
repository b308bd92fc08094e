"""Entry kind namespaces: the ones the system records and trusts, and ``external.*`` for user records.

Evidence lookups (``Log.find``) ask for system kinds by exact name, so an entry written by
``mlwarden ledger record`` must never carry one. Every user kind is therefore written under
``external.``: ``deploy`` becomes ``external.deploy``, ``external.deploy`` stays as it is,
and a kind in a system namespace (``model.promoted``, ``token.created``, ``feedback``...)
is refused rather than renamed, so nobody believes they recorded what the system records.
"""

from __future__ import annotations

from typing import Any

from mlwarden.errors import InvalidInput

ERASURE_KIND = "privacy.erased"
"""An erasure of personal data (a subject's, a decision's, or retention's): destroyed keys, never a subject."""
EXPORT_KIND = "privacy.exported"
"""A subject-access export was written (counts and its digest, never the subject)."""
USER_NAMESPACE = "external"
USER_PREFIX = USER_NAMESPACE + "."

SYSTEM_NAMESPACES = frozenset(
    {
        # recorded today
        "access",
        "data",
        "dataset",
        "feedback",
        "gate",
        "model",
        "policy",
        "prediction",
        "privacy",
        "request",
        "token",
        # reserved for the system
        "alert",
        "approval",
        "batch",
        "cert",
        "decision",
        "erasure",
        "identity",
        "key",
        "ledger",
        "mlwarden",
        "monitor",
        "quarantine",
        "redteam",
        "system",
        "workspace",
    }
)
"""First dot-separated segments of kinds only mlwarden itself records."""


def namespace(kind: str) -> str:
    """The first dot-separated segment of ``kind`` (``model`` for ``model.promoted``)."""
    return kind.split(".", 1)[0]


def is_user_kind(kind: str) -> bool:
    """Whether ``kind`` lies in the user namespace (never evidence for anything the system decides)."""
    return kind.startswith(USER_PREFIX)


def user_kind(kind: str) -> str:
    """The kind a user record is written under; raise :class:`InvalidInput` for a system kind."""
    if not isinstance(kind, str) or not kind:
        raise InvalidInput("kind must be a non-empty string")
    if is_user_kind(kind):
        if len(kind) == len(USER_PREFIX):
            raise InvalidInput(f"kind {kind!r} needs a name after {USER_PREFIX!r} (e.g. external.deploy)")
        return kind
    if kind == USER_NAMESPACE or namespace(kind) in SYSTEM_NAMESPACES:
        raise InvalidInput(
            f"kind {kind!r} is in the system's {namespace(kind)!r} namespace; `ledger record` writes only "
            f"user records, under {USER_PREFIX}* (e.g. --kind external.deploy, or --kind deploy)"
        )
    return USER_PREFIX + kind


def recorded_refs(kind: str, body: dict[str, Any]) -> tuple[str, ...]:
    """The references an entry's own text records (``ledger_refs`` rows must point at such an entry).

    A prediction records its decision ids, feedback its feedback id, an erasure its erasure id,
    a batch with sealed rows ``batch:<id>``; nothing else carries
    references, so a reference re-pointed at an entry that merely mentions it (feedback
    names its decision) is still found.
    """
    if kind == "prediction":
        ids = body.get("decision_ids")
        return tuple(i for i in ids if isinstance(i, str)) if isinstance(ids, list) else ()
    if kind == "feedback":
        found = body.get("feedback_id")
        return (found,) if isinstance(found, str) else ()
    if kind == ERASURE_KIND:
        found = body.get("erasure_id")
        return (found,) if isinstance(found, str) else ()
    if kind.startswith("data.batch_") and isinstance(body.get("sealed"), dict):  # mlwarden.data.batch_rows
        batch = body.get("batch")
        return (f"batch:{batch}",) if isinstance(batch, str) else ()
    return ()
