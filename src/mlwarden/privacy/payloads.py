"""Sealed payloads: salt + canonical JSON under AES-256-GCM, committed to by the ledger entry.

Record layout (version 1), one row of ``privacy_payloads`` per (decision id, field)::

    plaintext  = salt (32 bytes) || RFC 8785 canonical JSON
    nonce      = 12 random bytes
    aad        = canonical_json(["mlwarden-payload-v1", decision_id, field, key_id])
    ciphertext = AES-256-GCM(data key, nonce, plaintext, aad)      (tag appended)

The associated data binds a ciphertext to its decision, field and key: moved to another record
it fails authentication. The ledger index is not in it because sealing happens before the
entry (which holds the commitment) is appended; the decision id, unique per row, plays its part.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from sqlalchemy import Connection, insert, select

from mlwarden.errors import InvalidInput
from mlwarden.ledger.canonical import canonical_json
from mlwarden.privacy.commitments import SALT_BYTES, Commitment, commitment_of
from mlwarden.privacy.errors import KeyUnwrapFailed
from mlwarden.privacy.keys import DataKey, KeyRing, KeySlot, utc_day
from mlwarden.privacy.scopes import Field, Scope, check_field
from mlwarden.store.schema import privacy_erasures, privacy_keys, privacy_payloads

NONCE_BYTES = 12
MAX_DECISION_ID = 64


@dataclass(frozen=True, slots=True)
class PayloadRequest:
    """One payload to seal: a row's ``inputs`` or ``outputs`` for one decision, under a scope's key."""

    decision_id: str
    field: Field
    value: Any = dataclasses.field(repr=False)
    scope: Scope

    def __post_init__(self) -> None:
        if not isinstance(self.decision_id, str) or not 0 < len(self.decision_id) <= MAX_DECISION_ID:
            raise InvalidInput(f"decision id must be a non-empty string of at most {MAX_DECISION_ID} characters")
        check_field(self.field)

    @classmethod
    def for_row(cls, decision_id: str, field: Field, value: Any, subject: str | None = None) -> PayloadRequest:
        """Under the subject's key when a subject is named, else under the decision's own key."""
        scope = Scope.decision(decision_id) if subject is None else Scope.subject(subject)
        return cls(decision_id, field, value, scope)


@dataclass(frozen=True, slots=True)
class SealedPayload:
    """A sealed payload and the commitment its ledger entry must carry."""

    decision_id: str
    field: Field
    key_id: str
    nonce: bytes
    ciphertext: bytes
    commitment: Commitment

    def row(self, ledger_index: int | None = None) -> dict[str, Any]:
        """The ``privacy_payloads`` row (``ledger_index`` when the entry's index is already known)."""
        return {
            "decision_id": self.decision_id,
            "field": self.field,
            "key_id": self.key_id,
            "nonce": self.nonce,
            "ciphertext": self.ciphertext,
            "ledger_index": ledger_index,
        }


@dataclass(frozen=True, slots=True)
class Opened:
    """The payload, its salt, and proof it matched the commitment."""

    value: Any = dataclasses.field(repr=False)
    salt: bytes = dataclasses.field(repr=False)
    canonical: bytes = dataclasses.field(repr=False)


@dataclass(frozen=True, slots=True)
class Erased:
    """The payload's key was destroyed by the erasure ``erasure_id`` (crypto-shredded, not tampered)."""

    key_id: str
    erasure_id: str
    erased: str


@dataclass(frozen=True, slots=True)
class Tampered:
    """The payload cannot be trusted: ``reason`` says what failed (tag, commitment, key)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Absent:
    """No payload row is stored for this decision and field (e.g. a bundle without payloads)."""


OpenResult = Opened | Erased | Tampered | Absent


def payload_aad(decision_id: str, field: str, key_id: str) -> bytes:
    """The associated data that binds a ciphertext to its record."""
    return canonical_json(["mlwarden-payload-v1", decision_id, field, key_id])


def seal_with_keys(
    keys: dict[KeySlot, DataKey], slots: Sequence[KeySlot], requests: Sequence[PayloadRequest]
) -> list[SealedPayload]:
    """Seal each request under ``keys[slots[i]]``; one ``os.urandom`` call for every salt and nonce."""
    step = SALT_BYTES + NONCE_BYTES
    randomness = os.urandom(step * len(requests))
    sealed = []
    for i, request in enumerate(requests):
        key = keys[slots[i]]
        salt = randomness[i * step : i * step + SALT_BYTES]
        nonce = randomness[i * step + SALT_BYTES : (i + 1) * step]
        canonical = canonical_json(request.value)
        ciphertext = key.aead.encrypt(
            nonce, salt + canonical, payload_aad(request.decision_id, request.field, key.key_id)
        )
        sealed.append(
            SealedPayload(
                request.decision_id, request.field, key.key_id, nonce, ciphertext, commitment_of(salt, canonical)
            )
        )
    return sealed


def seal(conn: Connection, ring: KeyRing, requests: Sequence[PayloadRequest], *, now: datetime) -> list[SealedPayload]:
    """Seal a batch (e.g. every row of one prediction), creating the data keys it needs in ``conn``.

    New keys are inserted through ``conn``; the payload rows are not (see :func:`store_payloads`),
    so the caller writes them in the transaction that appends the entry holding the commitments.
    """
    day = utc_day(now)
    slots = [ring.slot(r.scope, r.field, day) for r in requests]
    keys = ring.keys_for_sealing(conn, slots, now=now)
    return seal_with_keys(keys, slots, requests)


def store_payloads(conn: Connection, sealed: Sequence[SealedPayload], *, ledger_index: int | None = None) -> None:
    """Insert the sealed rows (one statement for the batch)."""
    if sealed:
        conn.execute(insert(privacy_payloads), [s.row(ledger_index) for s in sealed])


def open_payload(conn: Connection, ring: KeyRing, decision_id: str, field: Field, expected: Commitment) -> OpenResult:
    """Open a stored payload and check it against the commitment the (verified) ledger entry holds.

    Never reads a cached key: a key erased elsewhere is reported :class:`Erased` at once.
    """
    row = conn.execute(
        select(privacy_payloads.c.key_id, privacy_payloads.c.nonce, privacy_payloads.c.ciphertext).where(
            privacy_payloads.c.decision_id == decision_id, privacy_payloads.c.field == field
        )
    ).first()
    if row is None:
        return Absent()
    key_id, nonce, ciphertext = str(row[0]), bytes(row[1]), bytes(row[2])
    key = _key_for_opening(conn, ring, key_id)
    if not isinstance(key, DataKey):
        return key
    if key.slot.field != field:
        return Tampered(f"data key {key_id} belongs to {key.slot.field}, not {field}")
    return open_sealed(key, decision_id, field, nonce, ciphertext, expected)


def open_sealed(
    key: DataKey, decision_id: str, field: str, nonce: bytes, ciphertext: bytes, expected: Commitment
) -> Opened | Tampered:
    """Decrypt with the record's associated data, then check the commitment."""
    try:
        plaintext = key.aead.decrypt(nonce, ciphertext, payload_aad(decision_id, field, key.key_id))
    except (InvalidTag, ValueError):
        return Tampered(f"{field} ciphertext of decision {decision_id} fails authentication")
    if len(plaintext) < SALT_BYTES:
        return Tampered(f"{field} payload of decision {decision_id} is shorter than its salt")
    salt, canonical = plaintext[:SALT_BYTES], plaintext[SALT_BYTES:]
    if commitment_of(salt, canonical) != expected:
        return Tampered(f"{field} payload of decision {decision_id} does not match its commitment")
    return Opened(json.loads(canonical), salt, canonical)


def _key_for_opening(conn: Connection, ring: KeyRing, key_id: str) -> DataKey | Erased | Tampered:
    """The key, or why there is none. A tombstone wins over a key row: a restored row is never used."""
    tomb = conn.execute(
        select(privacy_erasures.c.erasure_id, privacy_erasures.c.erased).where(privacy_erasures.c.key_id == key_id)
    ).first()
    if tomb is not None:
        return Erased(key_id, str(tomb[0]), str(tomb[1]))
    row = conn.execute(
        select(
            privacy_keys.c.scope_tag,
            privacy_keys.c.field,
            privacy_keys.c.day,
            privacy_keys.c.kek_id,
            privacy_keys.c.wrapped,
        ).where(privacy_keys.c.key_id == key_id)
    ).first()
    if row is None:
        return Tampered(f"data key {key_id} is missing and no erasure destroyed it")
    tag, field, day, kek_id, wrapped = row
    try:
        slot = KeySlot(str(tag), check_field(str(field)), str(day))
        return ring.unwrap_row(key_id, slot, str(kek_id), bytes(wrapped))
    except (KeyUnwrapFailed, InvalidInput) as exc:
        return Tampered(str(exc))
