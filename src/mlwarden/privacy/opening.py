"""Opening sealed payloads against the commitments of (verified) ledger entries: one, or many at once.

Every result is typed: :class:`Opened` (the value, proven to match the commitment),
:class:`Erased` (its key was destroyed by a recorded erasure), :class:`Tampered` (tag,
commitment or key check failed; ``reason`` says which) or :class:`Absent` (no payload stored).
Opening never reads a cached key, so a key erased by another process reads as erased at once;
a tombstone wins over a key row, so a key row restored from a backup is never used.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, select, tuple_

from mlwarden.errors import InvalidInput
from mlwarden.privacy.commitments import SALT_BYTES, Commitment, commitment_of
from mlwarden.privacy.errors import KeyUnwrapFailed
from mlwarden.privacy.keys import DataKey, KeyRing, KeySlot
from mlwarden.privacy.payloads import NONCE_BYTES, payload_aad, row_aad
from mlwarden.privacy.scopes import Field, Scope, check_field
from mlwarden.store.schema import privacy_erasures, privacy_keys, privacy_payloads, privacy_rows

CHUNK = 500
ROW_FIELDS = frozenset({"inputs", "outputs"})


@dataclass(frozen=True, slots=True)
class Opened:
    """The payload, its salt, and its canonical bytes, which matched the commitment."""

    value: Any = dataclasses.field(repr=False)
    salt: bytes = dataclasses.field(repr=False)
    canonical: bytes = dataclasses.field(repr=False)


@dataclass(frozen=True, slots=True)
class Erased:
    """The payload's key was destroyed by the erasure ``erasure_id`` (crypto-shredded, not tampered)."""

    key_id: str
    erasure_id: str


@dataclass(frozen=True, slots=True)
class Tampered:
    """The payload cannot be trusted: ``reason`` says what failed (tag, commitment, key)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Absent:
    """No payload row is stored for this decision and field (e.g. a bundle without payloads)."""


OpenResult = Opened | Erased | Tampered | Absent


@dataclass(frozen=True, slots=True)
class PayloadClaim:
    """What a ledger entry says about one payload: its decision, field and commitment."""

    decision_id: str
    field: Field
    commitment: Commitment


def open_sealed(
    key: DataKey, decision_id: str, field: str, nonce: bytes, ciphertext: bytes, expected: Commitment
) -> Opened | Tampered:
    """Decrypt a version-1 record with its associated data, then check the commitment."""
    if key.slot.field != field:
        return Tampered(f"data key {key.key_id} belongs to {key.slot.field}, not {field}")
    return _decrypt(key.aead, payload_aad(decision_id, field, key.key_id), decision_id, field, nonce, ciphertext,
                    expected)  # fmt: skip


def _decrypt(
    aead: AESGCM, aad: bytes, decision_id: str, field: str, nonce: bytes, ciphertext: bytes, expected: Commitment
) -> Opened | Tampered:
    try:
        plaintext = aead.decrypt(nonce, ciphertext, aad)
    except (InvalidTag, ValueError):
        return Tampered(f"{field} ciphertext of decision {decision_id} fails authentication")
    if len(plaintext) < SALT_BYTES:
        return Tampered(f"{field} payload of decision {decision_id} is shorter than its salt")
    salt, canonical = plaintext[:SALT_BYTES], plaintext[SALT_BYTES:]
    if commitment_of(salt, canonical) != expected:
        return Tampered(f"{field} payload of decision {decision_id} does not match its commitment")
    return Opened(json.loads(canonical), salt, canonical)


def _open_row(key: DataKey, row: _SealedRow, claim: PayloadClaim) -> Opened | Tampered:
    """A field of a version-2 row: under the day key, or the row's own key derived from it and the share."""
    if key.slot.field != claim.field:
        return Tampered(f"data key {key.key_id} belongs to {key.slot.field}, not {claim.field}")
    blob = row.inputs if claim.field == "inputs" else row.outputs
    aead = key.aead if row.share is None else key.row_key(row.share)
    aad = row_aad(claim.decision_id, claim.field, key.key_id)
    return _decrypt(aead, aad, claim.decision_id, claim.field, blob[:NONCE_BYTES], blob[NONCE_BYTES:],
                    claim.commitment)  # fmt: skip


def open_payload(conn: Connection, ring: KeyRing, decision_id: str, field: Field, expected: Commitment) -> OpenResult:
    """Open one stored payload and check it against the commitment the ledger entry holds."""
    return open_many(conn, ring, [PayloadClaim(decision_id, field, expected)])[0]


@dataclass(frozen=True, slots=True)
class _Row:
    key_id: str
    day: str
    kek_id: str | None
    wrapped_key: bytes | None
    erasure_id: str | None
    nonce: bytes
    ciphertext: bytes


@dataclass(frozen=True, slots=True)
class _SealedRow:
    """A ``privacy_rows`` row: one decision's inputs and outputs (version 2)."""

    inputs_key: str
    outputs_key: str
    share: bytes | None
    inputs: bytes
    outputs: bytes
    erasure_id: str | None

    def key_id(self, field: str) -> str:
        return self.inputs_key if field == "inputs" else self.outputs_key


def open_many(conn: Connection, ring: KeyRing, claims: Sequence[PayloadClaim]) -> list[OpenResult]:
    """Open many payloads with a few bulk queries (for ``ledger verify`` and subject exports); results in order.

    A decision's inputs and outputs are looked up in ``privacy_rows`` first, then (records
    written before migration 0017, and feedback) in ``privacy_payloads``.
    """
    sealed = _sealed_rows(conn, {c.decision_id for c in claims if c.field in ROW_FIELDS})
    rows = _payload_rows(conn, [c for c in claims if not (c.field in ROW_FIELDS and c.decision_id in sealed)])
    wanted = {r.key_id for r in rows.values() if r.wrapped_key is None and not r.erasure_id}
    for row in sealed.values():
        if not row.erasure_id:
            wanted |= {row.inputs_key, row.outputs_key}
    shared = _shared_keys(conn, ring, wanted)
    return [_open_claim(ring, claim, sealed, rows, shared) for claim in claims]


def _open_claim(
    ring: KeyRing,
    claim: PayloadClaim,
    sealed: dict[str, _SealedRow],
    rows: dict[tuple[str, str], _Row],
    shared: dict[str, DataKey | Erased | Tampered],
) -> OpenResult:
    new = sealed.get(claim.decision_id) if claim.field in ROW_FIELDS else None
    if new is not None:
        if new.erasure_id:  # the decision's share was destroyed: its key id is the decision id
            return Erased(claim.decision_id, new.erasure_id)
        key = shared[new.key_id(claim.field)]
        return _open_row(key, new, claim) if isinstance(key, DataKey) else key
    row = rows.get((claim.decision_id, claim.field))
    if row is None:
        return Absent()
    if row.erasure_id:
        return Erased(row.key_id, row.erasure_id)
    old = _own_key(ring, claim, row) if row.wrapped_key is not None else shared[row.key_id]
    if isinstance(old, DataKey):
        return open_sealed(old, claim.decision_id, claim.field, row.nonce, row.ciphertext, claim.commitment)
    return old


def _sealed_rows(conn: Connection, decision_ids: set[str]) -> dict[str, _SealedRow]:
    r = privacy_rows.c
    out: dict[str, _SealedRow] = {}
    for chunk in _chunks(sorted(decision_ids)):
        query = select(r.decision_id, r.inputs_key, r.outputs_key, r.share, r.inputs, r.outputs, r.erasure_id)
        for decision_id, inputs_key, outputs_key, share, inputs, outputs, erasure_id in conn.execute(
            query.where(r.decision_id.in_(chunk))
        ):
            out[str(decision_id)] = _SealedRow(
                str(inputs_key),
                str(outputs_key),
                None if share is None else bytes(share),
                bytes(inputs),
                bytes(outputs),
                None if erasure_id is None else str(erasure_id),
            )
    return out


def _payload_rows(conn: Connection, claims: Sequence[PayloadClaim]) -> dict[tuple[str, str], _Row]:
    p = privacy_payloads.c
    rows: dict[tuple[str, str], _Row] = {}
    for chunk in _chunks([(c.decision_id, c.field) for c in claims]):
        query = select(
            p.decision_id, p.field, p.key_id, p.day, p.kek_id, p.wrapped_key, p.erasure_id, p.nonce, p.ciphertext
        ).where(  # the plain IN lets SQLite use the primary key; it does not for a row-value IN alone
            p.decision_id.in_(sorted({d for d, _f in chunk})), tuple_(p.decision_id, p.field).in_(chunk)
        )
        for decision_id, field, key_id, day, kek_id, wrapped, erasure_id, nonce, ciphertext in conn.execute(query):
            rows[(str(decision_id), str(field))] = _Row(
                str(key_id),
                str(day),
                None if kek_id is None else str(kek_id),
                None if wrapped is None else bytes(wrapped),
                None if erasure_id is None else str(erasure_id),
                bytes(nonce),
                bytes(ciphertext),
            )
    return rows


def _own_key(ring: KeyRing, claim: PayloadClaim, row: _Row) -> DataKey | Tampered:
    """Unwrap the key stored in the row, bound to this decision, field and day."""
    slot = KeySlot(ring.scope_tag(Scope.decision(claim.decision_id)), claim.field, row.day)
    try:
        return ring.unwrap_row(row.key_id, slot, row.kek_id or "", row.wrapped_key or b"")
    except KeyUnwrapFailed as exc:
        return Tampered(str(exc))


def _chunks(items: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _shared_keys(conn: Connection, ring: KeyRing, key_ids: set[str]) -> dict[str, DataKey | Erased | Tampered]:
    """Each subject key, or why there is none. A tombstone wins over a key row: a restored row is never used."""
    out: dict[str, DataKey | Erased | Tampered] = {}
    ordered = sorted(key_ids)
    for chunk in _chunks(ordered):
        query = select(privacy_erasures.c.key_id, privacy_erasures.c.erasure_id)
        for key_id, erasure_id in conn.execute(query.where(privacy_erasures.c.key_id.in_(chunk))):
            out[str(key_id)] = Erased(str(key_id), str(erasure_id))
    live = [k for k in ordered if k not in out]
    for chunk in _chunks(live):
        key_query = select(
            privacy_keys.c.key_id,
            privacy_keys.c.scope_tag,
            privacy_keys.c.field,
            privacy_keys.c.day,
            privacy_keys.c.kek_id,
            privacy_keys.c.wrapped,
        ).where(privacy_keys.c.key_id.in_(chunk))
        for key_id, tag, field, day, kek_id, wrapped in conn.execute(key_query):
            try:
                slot = KeySlot(str(tag), check_field(str(field)), str(day))
                out[str(key_id)] = ring.unwrap_row(str(key_id), slot, str(kek_id), bytes(wrapped))
            except (KeyUnwrapFailed, InvalidInput) as exc:
                out[str(key_id)] = Tampered(str(exc))
    for key_id in live:
        out.setdefault(key_id, Tampered(f"data key {key_id} is missing and no erasure destroyed it"))
    return out
