"""Sealed payloads: salt + canonical JSON under AES-256-GCM, committed to by the ledger entry.

Prediction rows (record version 2), one row of ``privacy_rows`` per decision (both fields)::

    plaintext  = salt (32 bytes) || RFC 8785 canonical JSON             (per field)
    key        = the subject's day key of the field, or, for a row without subject,
                 HMAC-SHA256(the unnamed scope's day key of the field, b"mlwarden-row-key-v1\\x00" || share)
    aad        = framed(b"mlwarden-payload-v2", decision_id, field, day_key_id)
    inputs, outputs = nonce (12 random bytes) || AES-256-GCM(key, nonce, plaintext, aad)

Other payloads (record version 1; feedback's ``expected``, and predictions recorded before
migration 0017), one row of ``privacy_payloads`` per (decision id, field)::

    aad        = framed(b"mlwarden-payload-v1", decision_id, field, key_id)   (see privacy.framing)
    ciphertext = AES-256-GCM(data key, nonce, plaintext, aad)                 (tag appended)

The associated data binds a ciphertext to its decision, field and key: moved to another record
it fails authentication. The ledger index is not in it because sealing happens before the
entry (which holds the commitment) is appended; the decision id, unique per row, plays its part.
A version-1 row without subject carries its own wrapped key (``kek_id``, ``wrapped_key``); a
subject's row points at the subject's key of the day in ``privacy_keys``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert

from mlwarden.errors import InvalidInput
from mlwarden.ledger.canonical import canonical_json
from mlwarden.ledger.entry import PayloadRow
from mlwarden.privacy.commitments import DOMAIN, SALT_BYTES, Commitment, commitment_of
from mlwarden.privacy.framing import frame_part, framed
from mlwarden.privacy.keys import SHARE_BYTES, DataKey, KeyRing, NewKey, utc_day
from mlwarden.privacy.scopes import FIELDS, Field, Scope, check_field
from mlwarden.randomness import random_bytes
from mlwarden.store.schema import privacy_payloads

NONCE_BYTES = 12
MAX_DECISION_ID = 64


@dataclass(frozen=True, slots=True)
class PayloadRequest:
    """One payload to seal: a row's ``inputs`` or ``outputs`` for one decision, under a subject's or its own key."""

    decision_id: str
    field: Field
    value: Any = dataclasses.field(repr=False)
    scope: Scope

    def __post_init__(self) -> None:
        if not isinstance(self.decision_id, str) or not 0 < len(self.decision_id) <= MAX_DECISION_ID:
            raise InvalidInput(f"decision id must be a non-empty string of at most {MAX_DECISION_ID} characters")
        check_field(self.field)
        if self.scope.kind == "decision" and self.scope.id != self.decision_id:
            raise InvalidInput("a payload without subject is sealed under its own decision's key")

    @classmethod
    def for_row(cls, decision_id: str, field: Field, value: Any, subject: str | None = None) -> PayloadRequest:
        """Under the subject's key when a subject is named, else under a key of its own."""
        scope = Scope.decision(decision_id) if subject is None else Scope.subject(subject)
        return cls(decision_id, field, value, scope)


@dataclass(frozen=True, slots=True)
class SealedPayload:
    """A sealed payload and the commitment its ledger entry must carry."""

    decision_id: str
    field: Field
    key_id: str
    day: str
    nonce: bytes
    ciphertext: bytes
    commitment: Commitment
    kek_id: str | None = None
    wrapped_key: bytes | None = dataclasses.field(default=None, repr=False)

    def row(self, ledger_index: int | None = None) -> dict[str, Any]:
        """The ``privacy_payloads`` row (``ledger_index`` when the entry's index is already known)."""
        return {
            "decision_id": self.decision_id,
            "field": self.field,
            "key_id": self.key_id,
            "day": self.day,
            "kek_id": self.kek_id,
            "wrapped_key": self.wrapped_key,
            "nonce": self.nonce,
            "ciphertext": self.ciphertext,
            "ledger_index": ledger_index,
        }


AAD_LABEL = b"mlwarden-payload-v1"
_AAD_PREFIX = AAD_LABEL + b"\x00"
_FIELD_PARTS: dict[str, bytes] = {field: frame_part(field) for field in FIELDS}


def payload_aad(decision_id: str, field: str, key_id: str) -> bytes:
    """The associated data that binds a ciphertext to its record (decision id, field, key id)."""
    return framed(AAD_LABEL, decision_id, field, key_id)


def check_decision_id(decision_id: object) -> str:
    """``decision_id`` when it is a non-empty string of at most 64 characters; an input error otherwise."""
    if not isinstance(decision_id, str) or not 0 < len(decision_id) <= MAX_DECISION_ID:
        raise InvalidInput(f"decision id must be a non-empty string of at most {MAX_DECISION_ID} characters")
    return decision_id


@dataclass(frozen=True, slots=True)
class SealedBatch:
    """Rows sealed for ledger entries: each row's commitment digests and the rows to insert (one per decision)."""

    inputs_digests: list[bytes]
    outputs_digests: list[bytes]
    rows: list[PayloadRow]

    @property
    def inputs_commitments(self) -> list[str]:
        """Each row's inputs commitment as the entry writes it (64 hex digits)."""
        return [d.hex() for d in self.inputs_digests]

    @property
    def outputs_commitments(self) -> list[str]:
        """Each row's outputs commitment as the entry writes it (64 hex digits)."""
        return [d.hex() for d in self.outputs_digests]


ROW_AAD_LABEL = b"mlwarden-payload-v2"
_ROW_AAD_PREFIX = ROW_AAD_LABEL + b"\x00"


def row_aad(decision_id: str, field: str, key_id: str) -> bytes:
    """The associated data of a field in a ``privacy_rows`` row (decision id, field, the day key's id)."""
    return framed(ROW_AAD_LABEL, decision_id, field, key_id)


_FIELD_STEP = SALT_BYTES + NONCE_BYTES


def seal_prediction_rows(
    decision_ids: Sequence[str],
    inputs: Sequence[Any],
    outputs: Sequence[Any],
    keys: Sequence[tuple[DataKey, DataKey]],
    *,
    shares: bool,
) -> SealedBatch:
    """Seal row ``i``'s inputs and outputs under ``keys[i]`` (the inputs and outputs keys of a day), one row each.

    ``shares``: the keys are the ``unnamed`` scope's day keys, and each row is sealed under keys of
    its own, derived from them and 32 random bytes stored in the row (:meth:`DataKey.row_key`);
    otherwise (subjects) the day keys seal the row directly. See :func:`seal_canonical_rows`.
    """
    return seal_canonical_rows(
        [check_decision_id(d) for d in decision_ids],
        [canonical_json(value) for value in inputs],
        [canonical_json(value) for value in outputs],
        keys,
        [shares] * len(decision_ids),
    )


def seal_canonical_rows(
    decision_ids: Sequence[str],
    inputs: Sequence[bytes],
    outputs: Sequence[bytes],
    keys: Sequence[tuple[DataKey, DataKey]],
    shares: Sequence[bool],
) -> SealedBatch:
    """:func:`seal_prediction_rows` for checked decision ids and payloads already in canonical JSON.

    Row ``i`` is sealed under ``keys[i]`` (its day is theirs) or, where ``shares[i]``, under keys
    of its own derived from them and a share. One :func:`random_bytes` call gives every share, salt and
    nonce (a share's bytes are drawn for every row, used where ``shares[i]``). Each field is
    ``nonce || AES-256-GCM(salt || canonical)`` with :func:`row_aad`; the digests are those of
    :func:`commitment_of`.
    """
    step = SHARE_BYTES + 2 * _FIELD_STEP
    randomness = random_bytes(step * len(decision_ids))
    sha256 = hashlib.sha256
    inputs_digests: list[bytes] = []
    outputs_digests: list[bytes] = []
    rows: list[PayloadRow] = []
    for i, decision_id in enumerate(decision_ids):
        head = _ROW_AAD_PREFIX + frame_part(decision_id)
        inputs_key, outputs_key = keys[i]
        at = i * step
        salt_at = at + SHARE_BYTES  # share, then inputs' salt and nonce, then outputs' salt and nonce
        out_at = salt_at + _FIELD_STEP
        salted_inputs = randomness[salt_at : salt_at + SALT_BYTES] + inputs[i]
        salted_outputs = randomness[out_at : out_at + SALT_BYTES] + outputs[i]
        inputs_nonce = randomness[salt_at + SALT_BYTES : out_at]
        outputs_nonce = randomness[out_at + SALT_BYTES : out_at + _FIELD_STEP]
        share = randomness[at:salt_at] if shares[i] else None
        if share is None:
            inputs_aead, outputs_aead = inputs_key.aead, outputs_key.aead
        else:
            inputs_aead, outputs_aead = inputs_key.row_key(share), outputs_key.row_key(share)
        rows.append((
            decision_id, inputs_key.slot.day, inputs_key.key_id, outputs_key.key_id, share,
            inputs_nonce + inputs_aead.encrypt(inputs_nonce, salted_inputs, head + inputs_key.aad_tail),
            outputs_nonce + outputs_aead.encrypt(outputs_nonce, salted_outputs, head + outputs_key.aad_tail),
        ))  # fmt: skip
        inputs_digests.append(sha256(DOMAIN + salted_inputs).digest())
        outputs_digests.append(sha256(DOMAIN + salted_outputs).digest())
    return SealedBatch(inputs_digests, outputs_digests, rows)


def seal_with_keys(
    requests: Sequence[PayloadRequest], keys: Sequence[DataKey | NewKey], day: str
) -> list[SealedPayload]:
    """Seal ``requests[i]`` under ``keys[i]`` (a :class:`NewKey` is stored inline); one ``os.urandom`` call."""
    step = SALT_BYTES + NONCE_BYTES
    randomness = os.urandom(step * len(requests))
    sealed = []
    for i, request in enumerate(requests):
        given = keys[i]
        key = given.key if isinstance(given, NewKey) else given
        salt = randomness[i * step : i * step + SALT_BYTES]
        nonce = randomness[i * step + SALT_BYTES : (i + 1) * step]
        canonical = canonical_json(request.value)
        aad = payload_aad(request.decision_id, request.field, key.key_id)
        sealed.append(
            SealedPayload(
                request.decision_id,
                request.field,
                key.key_id,
                day,
                nonce,
                key.aead.encrypt(nonce, salt + canonical, aad),
                commitment_of(salt, canonical),
                given.kek_id if isinstance(given, NewKey) else None,
                given.wrapped if isinstance(given, NewKey) else None,
            )
        )
    return sealed


def seal(conn: Connection, ring: KeyRing, requests: Sequence[PayloadRequest], *, now: datetime) -> list[SealedPayload]:
    """Seal a batch (e.g. every row of one prediction); subjects' keys of the day are found or created in ``conn``.

    Payload rows are not written (see :func:`store_payloads`): the caller writes them in the
    transaction that appends the entry holding the commitments.
    """
    if len({(r.decision_id, r.field) for r in requests}) != len(requests):
        raise InvalidInput("a batch seals each decision's inputs and outputs at most once")
    day = utc_day(now)
    slots = [ring.slot(r.scope, r.field, day) for r in requests]
    pairs = list(zip(requests, slots, strict=True))
    shared = ring.subject_keys(conn, [s for r, s in pairs if r.scope.kind == "subject"], now=now)
    own = iter(ring.new_keys([s for r, s in pairs if r.scope.kind == "decision"]))
    keys: list[DataKey | NewKey] = [next(own) if r.scope.kind == "decision" else shared[s] for r, s in pairs]
    return seal_with_keys(requests, keys, day)


def store_payloads(conn: Connection, sealed: Sequence[SealedPayload], *, ledger_index: int | None = None) -> None:
    """Insert the sealed rows (one statement for the batch)."""
    if sealed:
        conn.execute(insert(privacy_payloads), [s.row(ledger_index) for s in sealed])
