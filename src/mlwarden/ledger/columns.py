"""The lookup columns of an entry row beyond kind and subject, derived from the entry itself.

``ledger_entries`` keeps ``principal``, ``entry_time``, ``decision`` and ``status`` beside the
canonical text so that audit queries select by index. They are copies, never the truth:
they are written with the entry in its transaction, ``ledger verify`` checks each of them
against the entry text, and readers re-check every row they return against its text.

Only two kinds carry a decision or a status, so an append parses no body for any other:

* ``feedback``: ``decision`` is the body's ``decision_id`` (the prediction it is about);
* ``request.rejected``: ``status`` is the body's HTTP ``status``.
"""

from __future__ import annotations

from typing import Any

import orjson

DECISION_KIND = "feedback"
STATUS_KIND = "request.rejected"
MAX_DECISION = 64


def decision_of(kind: str, body: dict[str, Any]) -> str | None:
    """The decision id an entry of ``kind`` with ``body`` is about (kept in the ``decision`` column)."""
    if kind != DECISION_KIND:
        return None
    found = body.get("decision_id")
    return found if isinstance(found, str) and 0 < len(found) <= MAX_DECISION else None


def status_of(kind: str, body: dict[str, Any]) -> int | None:
    """The HTTP status a rejection recorded (kept in the ``status`` column)."""
    if kind != STATUS_KIND:
        return None
    found = body.get("status")
    return found if isinstance(found, int) and not isinstance(found, bool) and 100 <= found <= 999 else None


def derived(kind: str, body: dict[str, Any]) -> tuple[str | None, int | None]:
    """``(decision, status)`` of an entry."""
    return decision_of(kind, body), status_of(kind, body)


def derived_from_json(kind: str, body_json: bytes) -> tuple[str | None, int | None]:
    """:func:`derived` from the canonical body text, parsed only for the kinds that carry either."""
    if kind not in (DECISION_KIND, STATUS_KIND):
        return None, None
    try:
        body = orjson.loads(body_json)
    except orjson.JSONDecodeError:
        return None, None
    return derived(kind, body) if isinstance(body, dict) else (None, None)
