"""Erasable yet tamper-evident personal data: salted commitments in the ledger, payloads sealed under erasable keys.

>>> from datetime import UTC, datetime
>>> ring = KeyRing(LocalKek.load(paths.privacy_kek))  # doctest: +SKIP
>>> with write_transaction(engine) as conn:  # doctest: +SKIP
...     sealed = seal(conn, ring, [PayloadRequest.for_row(decision, "inputs", row, subject="customer-42")],
...                   now=datetime.now(UTC))
...     body["inputs_commitments"] = [s.commitment.hex for s in sealed]   # into the ledger entry
...     store_payloads(conn, sealed)
...     record = erase_subject(conn, ring, "customer-42", reason="gdpr art. 17", now=datetime.now(UTC))

Free-text identifier detection lives in :mod:`mlwarden.privacy.identifiers` (not imported here:
it loads the phone-number metadata).
"""

from mlwarden.privacy.commitments import Commitment, Opening, commit, commitment_of, verify_commitment
from mlwarden.privacy.erasure import ErasureRecord, erase_scope, erase_subject, expire_inputs, retention_cutoff
from mlwarden.privacy.errors import CommitmentMismatch, IdentifierRefused, KeyUnwrapFailed
from mlwarden.privacy.kek import KeyEncryptionKey, LocalKek, read_kek, write_kek
from mlwarden.privacy.keys import DataKey, KeyRing, KeySlot, utc_day
from mlwarden.privacy.opening import (
    Absent,
    Erased,
    Opened,
    OpenResult,
    PayloadClaim,
    Tampered,
    open_many,
    open_payload,
)
from mlwarden.privacy.payloads import PayloadRequest, SealedPayload, seal, seal_with_keys, store_payloads
from mlwarden.privacy.scopes import FIELDS, Field, Scope

__all__ = [
    "FIELDS",
    "Absent",
    "Commitment",
    "CommitmentMismatch",
    "DataKey",
    "Erased",
    "ErasureRecord",
    "Field",
    "IdentifierRefused",
    "KeyEncryptionKey",
    "KeyRing",
    "KeySlot",
    "KeyUnwrapFailed",
    "LocalKek",
    "OpenResult",
    "Opened",
    "Opening",
    "PayloadClaim",
    "PayloadRequest",
    "Scope",
    "SealedPayload",
    "Tampered",
    "commit",
    "commitment_of",
    "erase_scope",
    "erase_subject",
    "expire_inputs",
    "open_many",
    "open_payload",
    "read_kek",
    "retention_cutoff",
    "seal",
    "seal_with_keys",
    "store_payloads",
    "utc_day",
    "verify_commitment",
    "write_kek",
]
