"""Seal a prediction's rows: per-row commitments for the entry, sealed payloads attached to it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlwarden.errors import InvalidInput
from mlwarden.ledger.entry import PayloadRow, PreparedEntry
from mlwarden.privacy import KeyRing, KeySlot, LocalKek, Scope, utc_day
from mlwarden.privacy.payloads import SealedBatch, seal_own_rows, seal_shared_rows
from mlwarden.privacy.scopes import MAX_ID
from mlwarden.store.engine import write_transaction
from mlwarden.workspace import Workspace

ENTRY_VERSION = 2
_RING = "privacy_ring"


def privacy_ring(ws: Workspace) -> KeyRing:
    """The workspace's key ring (one per process: it caches subjects' keys of the day)."""
    ring = ws.services.get(_RING)
    if not isinstance(ring, KeyRing):
        ring = KeyRing(LocalKek.load(ws.options.paths.privacy_kek))
        ws.services[_RING] = ring
    return ring


def check_subjects(subjects: Any, rows: int) -> list[str] | None:
    """The request's data subjects, one per row, or None; an input error names what is wrong (never a value)."""
    if subjects is None:
        return None
    if not isinstance(subjects, list) or len(subjects) != rows:
        raise InvalidInput(f"subjects must be a list with one subject per row ({rows}), or be left out")
    for position, subject in enumerate(subjects):
        if not isinstance(subject, str) or not subject.strip() or len(subject) > MAX_ID:
            raise InvalidInput(f"subjects[{position}] must be a non-empty string of at most {MAX_ID} characters")
    return subjects


@dataclass(frozen=True, slots=True)
class SealedRows:
    """What the entry body gains (version, commitments) and the payload rows it carries."""

    body: dict[str, Any]
    attachments: tuple[PayloadRow, ...]

    def attach(self, entry: PreparedEntry) -> PreparedEntry:
        """The entry carrying the sealed payloads (inserted in the entry's own transaction)."""
        return entry.with_attachments(self.attachments)


def _rows(batch: SealedBatch) -> SealedRows:
    body = {
        "v": ENTRY_VERSION,
        "inputs_commitments": batch.inputs_commitments,
        "outputs_commitments": batch.outputs_commitments,
    }
    return SealedRows(body, tuple(batch.rows))


def _subject_slots(ring: KeyRing, subjects: Sequence[str], day: str) -> list[tuple[KeySlot, KeySlot]]:
    """Each row's (inputs, outputs) key slots: its subject's tag (an HMAC, memoised by the ring) and ``day``."""
    slots = []
    for subject in subjects:
        tag = ring.scope_tag(Scope.subject(subject))
        slots.append((KeySlot(tag, "inputs", day), KeySlot(tag, "outputs", day)))
    return slots


def seal_rows(
    ws: Workspace,
    decision_ids: Sequence[str],
    inputs: Sequence[Any],
    outputs: Sequence[Any],
    subjects: Sequence[str] | None = None,
    *,
    now: datetime | None = None,
) -> SealedRows:
    """Seal each row's inputs and outputs, under its subject's key or a key of its own decision.

    Rows without subject need no database (their keys are new and stored inline); subjects' keys
    of the day are found or created in a short transaction of their own (a key without payloads
    is harmless), so the ledger's transaction only inserts the rows.
    """
    if not len(decision_ids) == len(inputs) == len(outputs):
        raise InvalidInput(f"inputs ({len(inputs)}) and outputs ({len(outputs)}) must have one row per decision")
    moment = now or datetime.now(UTC)
    day = utc_day(moment)
    ring = privacy_ring(ws)
    if subjects is None:
        return _rows(seal_own_rows(ring, decision_ids, inputs, outputs, day))
    if len(subjects) != len(decision_ids):
        raise InvalidInput(f"subjects ({len(subjects)}) must have one subject per decision ({len(decision_ids)})")
    pairs = _subject_slots(ring, subjects, day)
    flat = [slot for pair in pairs for slot in pair]
    found = ring.cached_subject_keys(flat)
    if found is None:  # not all unwrapped within the last minute: find or create them (a short transaction)
        with write_transaction(ws.engine) as conn:
            found = ring.subject_keys(conn, flat, now=moment)
    keys = [(found[a], found[b]) for a, b in pairs]
    return _rows(seal_shared_rows(decision_ids, inputs, outputs, keys, day))
