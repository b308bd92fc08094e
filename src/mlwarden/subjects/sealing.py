"""Seal a prediction's rows: per-row commitments for the entry, sealed payloads attached to it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlwarden.errors import InvalidInput
from mlwarden.ledger.entry import PayloadRow, PreparedEntry
from mlwarden.privacy import (
    KeyRing,
    KeySlot,
    LocalKek,
    PayloadRequest,
    Scope,
    SealedPayload,
    seal,
    seal_with_keys,
    utc_day,
)
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


def _requests(
    decision_ids: Sequence[str], inputs: Sequence[Any], outputs: Sequence[Any], subjects: Sequence[str] | None
) -> list[PayloadRequest]:
    requests = []
    for i, decision_id in enumerate(decision_ids):
        subject = None if subjects is None else subjects[i]
        requests.append(PayloadRequest.for_row(decision_id, "inputs", inputs[i], subject))
        requests.append(PayloadRequest.for_row(decision_id, "outputs", outputs[i], subject))
    return requests


def _slots(ring: KeyRing, requests: Sequence[PayloadRequest], day: str) -> list[KeySlot]:
    """Each request's key slot; a scope's tag (an HMAC) computed once for its inputs and outputs."""
    tags: dict[Scope, str] = {}
    slots = []
    for request in requests:
        tag = tags.get(request.scope)
        if tag is None:
            tag = tags[request.scope] = ring.scope_tag(request.scope)
        slots.append(KeySlot(tag, request.field, day))
    return slots


def _rows(sealed: Sequence[SealedPayload]) -> SealedRows:
    body = {
        "v": ENTRY_VERSION,
        "inputs_commitments": [s.commitment.hex for s in sealed if s.field == "inputs"],
        "outputs_commitments": [s.commitment.hex for s in sealed if s.field == "outputs"],
    }
    rows = tuple(
        (s.decision_id, s.field, s.key_id, s.day, s.kek_id, s.wrapped_key, s.nonce, s.ciphertext) for s in sealed
    )
    return SealedRows(body, rows)


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
    requests = _requests(decision_ids, inputs, outputs, subjects)
    slots = _slots(ring, requests, day)
    if subjects is None:
        return _rows(seal_with_keys(requests, ring.new_keys(slots), day))
    cached = ring.cached_subject_keys(slots)
    if cached is not None:  # the subjects' keys of the day, unwrapped within the last minute: no database
        return _rows(seal_with_keys(requests, [cached[s] for s in slots], day))
    with write_transaction(ws.engine) as conn:
        return _rows(seal(conn, ring, requests, now=moment))
