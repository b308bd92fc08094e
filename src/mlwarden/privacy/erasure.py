"""Crypto-shredding: destroy data keys (a subject's, a decision's, or expired inputs') and leave tombstones.

The caller records the returned :class:`ErasureRecord` as a ledger entry in the same transaction:
its ``erasure_id`` and ``key_ids`` let ``ledger verify`` accept exactly the payloads whose keys a
recorded erasure destroyed (a key missing without one is tampering). The record never holds
the subject id, nor its tag: the append-only log must not become a list of erased people.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, insert

from mlwarden.errors import InvalidInput
from mlwarden.privacy.keys import KeyRing, utc_day
from mlwarden.privacy.scopes import Scope
from mlwarden.store.schema import privacy_erasures

MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class ErasureRecord:
    """What an erasure destroyed: the body of its ledger entry."""

    erasure_id: str
    what: Literal["subject", "decision", "retention"]
    reason: str
    erased: str
    key_ids: tuple[str, ...]

    @property
    def count(self) -> int:
        """How many data keys were destroyed (0: nothing was known, a no-op)."""
        return len(self.key_ids)

    def entry_body(self) -> dict[str, Any]:
        """The ledger entry body: ids and counts only, never a subject."""
        return {
            "erasure_id": self.erasure_id,
            "what": self.what,
            "reason": self.reason,
            "erased": self.erased,
            "keys_destroyed": self.count,
            "key_ids": list(self.key_ids),
        }


def _reason(reason: str) -> str:
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        raise InvalidInput(f"erasure reason must be non-empty text of at most {MAX_REASON} characters")
    return reason.strip()


def _record(
    conn: Connection, what: Literal["subject", "decision", "retention"], reason: str, key_ids: list[str], now: datetime
) -> ErasureRecord:
    record = ErasureRecord(os.urandom(16).hex(), what, reason, now.astimezone(UTC).isoformat(), tuple(key_ids))
    if key_ids:
        conn.execute(
            insert(privacy_erasures),
            [{"key_id": k, "erasure_id": record.erasure_id, "erased": record.erased} for k in key_ids],
        )
    return record


def erase_scope(conn: Connection, ring: KeyRing, scope: Scope, *, reason: str, now: datetime) -> ErasureRecord:
    """Destroy every data key of ``scope``; an unknown subject or decision gives a record with count 0."""
    reason = _reason(reason)
    key_ids = ring.destroy_scope(conn, ring.scope_tag(scope))
    return _record(conn, scope.kind, reason, key_ids, now)


def erase_subject(conn: Connection, ring: KeyRing, subject: str, *, reason: str, now: datetime) -> ErasureRecord:
    """Destroy every data key of a data subject: all their payloads become unreadable at once."""
    return erase_scope(conn, ring, Scope.subject(subject), reason=reason, now=now)


def retention_cutoff(now: datetime, inputs_retention_days: int) -> str:
    """The first UTC day whose inputs are kept: inputs of earlier days are older than the limit.

    Keys are per day, so an input is kept at least ``inputs_retention_days`` full days and erased
    within one day after that.
    """
    if isinstance(inputs_retention_days, bool) or not isinstance(inputs_retention_days, int):
        raise InvalidInput("inputs_retention_days must be a whole number of days")
    if inputs_retention_days < 1:
        raise InvalidInput(f"inputs_retention_days must be at least 1, got {inputs_retention_days}")
    return utc_day(now - timedelta(days=inputs_retention_days))


def expire_inputs(
    conn: Connection, ring: KeyRing, *, inputs_retention_days: int, now: datetime, reason: str = "retention"
) -> ErasureRecord:
    """Destroy the ``inputs`` keys of every day before the retention cut-off; outputs stay readable."""
    cutoff = retention_cutoff(now, inputs_retention_days)
    key_ids = ring.destroy_inputs_before(conn, cutoff)
    return _record(conn, "retention", _reason(f"{reason}: inputs before {cutoff}"), key_ids, now)
