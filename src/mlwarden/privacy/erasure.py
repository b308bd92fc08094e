"""Crypto-shredding: destroy data keys (a subject's, a decision's, or expired inputs') and record what went.

The caller appends the returned :class:`ErasureRecord` as a ledger entry in the same transaction
(``entry_body()``). It never holds the subject id, nor its tag: the append-only log must not
become a list of erased people. What ``ledger verify`` can check with it:

* subject and decision erasures list the destroyed key ids: a payload is accepted as erased
  when its key id is listed by an erasure entry (a key missing without one is tampering); a
  prediction row's share has its decision id as key id;
* retention names its cut-off day and the count and SHA-256 of the sorted key ids (a day's
  worth of rows without subject can be millions of keys): an ``inputs`` payload is accepted as
  erased by it when its prediction entry's UTC day is before the cut-off.

Keys of the day (a subject's, or the ``unnamed`` scope's) leave a tombstone row
(``privacy_erasures``); a row's share or own key is cleared from its row, which records the erasure id.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, Connection, and_, insert, select, update

from mlwarden.errors import InvalidInput
from mlwarden.privacy.keys import DELETE_CHUNK, KeyRing, utc_day
from mlwarden.privacy.scopes import Scope
from mlwarden.store.schema import privacy_erasures, privacy_payloads, privacy_rows

MAX_REASON = 500
What = Literal["subject", "decision", "retention"]


@dataclass(frozen=True, slots=True)
class ErasureRecord:
    """What an erasure destroyed: the body of its ledger entry."""

    erasure_id: str
    what: What
    reason: str
    erased: str
    key_ids: tuple[str, ...]
    inputs_before: str | None = None

    @property
    def count(self) -> int:
        """How many data keys were destroyed (0: nothing was known, a no-op)."""
        return len(self.key_ids)

    @property
    def key_ids_sha256(self) -> str:
        """SHA-256 of the sorted key ids joined by newlines: commits to the list without writing it out."""
        return hashlib.sha256("\n".join(sorted(self.key_ids)).encode("ascii")).hexdigest()

    def entry_body(self) -> dict[str, Any]:
        """The ledger entry body: ids, counts and the rule, never a subject."""
        body: dict[str, Any] = {
            "erasure_id": self.erasure_id,
            "what": self.what,
            "reason": self.reason,
            "keys_destroyed": self.count,
        }
        if self.what == "retention":
            return body | {"inputs_before": self.inputs_before, "key_ids_sha256": self.key_ids_sha256}
        return body | {"key_ids": sorted(self.key_ids)}


def _reason(reason: str) -> str:
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        raise InvalidInput(f"erasure reason must be non-empty text of at most {MAX_REASON} characters")
    return reason.strip()


def _tombstones(conn: Connection, erasure_id: str, key_ids: list[str], erased: str) -> None:
    if key_ids:
        conn.execute(
            insert(privacy_erasures), [{"key_id": k, "erasure_id": erasure_id, "erased": erased} for k in key_ids]
        )


def _clear_own_keys(conn: Connection, erasure_id: str, condition: ColumnElement[bool]) -> list[str]:
    """Erase the keys held in payload rows matching ``condition``; their key ids."""
    p = privacy_payloads.c
    live = and_(condition, p.wrapped_key.is_not(None), p.erasure_id.is_(None))
    ids = sorted(str(r[0]) for r in conn.execute(select(p.key_id).where(live)))
    for start in range(0, len(ids), DELETE_CHUNK):
        conn.execute(
            update(privacy_payloads)
            .where(p.key_id.in_(ids[start : start + DELETE_CHUNK]), p.wrapped_key.is_not(None))
            .values(wrapped_key=None, kek_id=None, erasure_id=erasure_id)
        )
    return ids


def _clear_share(conn: Connection, erasure_id: str, decision_id: str) -> list[str]:
    """Erase a prediction row's share (its own keys derive from it): ``[decision_id]``, or [] if none was live."""
    r = privacy_rows.c
    done = conn.execute(
        update(privacy_rows)
        .where(r.decision_id == decision_id, r.share.is_not(None), r.erasure_id.is_(None))
        .values(share=None, erasure_id=erasure_id)
    )
    return [decision_id] if done.rowcount else []


def _new_record(what: What, reason: str, now: datetime, **extra: Any) -> ErasureRecord:
    return ErasureRecord(os.urandom(16).hex(), what, _reason(reason), now.astimezone(UTC).isoformat(), (), **extra)


def erase_scope(conn: Connection, ring: KeyRing, scope: Scope, *, reason: str, now: datetime) -> ErasureRecord:
    """Destroy every data key of ``scope``; an unknown subject or decision gives a record with count 0.

    A decision's erasure reaches only its rows that named no subject (a subject's rows share the
    subject's key of the day: erase the subject); it destroys the row's share, so both its inputs
    and outputs become unreadable.
    """
    if scope.kind == "unnamed":
        raise InvalidInput("the keys of rows without subject are erased by retention, or one decision at a time")
    record = _new_record(scope.kind, reason, now)
    if scope.kind == "subject":
        key_ids = ring.destroy_scope(conn, ring.scope_tag(scope))
        _tombstones(conn, record.erasure_id, key_ids, record.erased)
    else:
        key_ids = _clear_share(conn, record.erasure_id, scope.id)
        key_ids += _clear_own_keys(conn, record.erasure_id, privacy_payloads.c.decision_id == scope.id)
    return ErasureRecord(record.erasure_id, record.what, record.reason, record.erased, tuple(key_ids))


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
    record = _new_record("retention", f"{reason}: inputs before {cutoff}", now, inputs_before=cutoff)
    shared = ring.destroy_inputs_before(conn, cutoff)
    _tombstones(conn, record.erasure_id, shared, record.erased)
    p = privacy_payloads.c
    own = _clear_own_keys(conn, record.erasure_id, and_(p.field == "inputs", p.day < cutoff))
    return ErasureRecord(
        record.erasure_id, record.what, record.reason, record.erased, tuple(shared + own), inputs_before=cutoff
    )
