"""Salted commitments to JSON payloads: what a ledger entry holds instead of the payload itself.

Byte layout (version 1)::

    commitment = SHA-256( b"mlwarden-commit-v1\\x00" || salt || canonical )

``salt`` is exactly 32 random bytes and ``canonical`` the RFC 8785 canonical JSON of the payload.
The fixed salt length makes the concatenation unambiguous; the domain prefix keeps a commitment
from ever equalling a ledger leaf hash (prefix 0x00) or node hash (0x01) or any other SHA-256
the project computes. The salt travels with the payload (inside the encrypted record), so the
commitment alone cannot be brute-forced back to a low-entropy payload; once the payload's key
is destroyed, the salt is gone with it.

>>> opening = commit({"age": 42})
>>> verify_commitment(opening.commitment, opening.salt, opening.canonical)
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Any

from mlwarden.errors import InvalidInput
from mlwarden.ledger.canonical import canonical_json
from mlwarden.privacy.errors import CommitmentMismatch

DOMAIN = b"mlwarden-commit-v1\x00"
SALT_BYTES = 32
DIGEST_BYTES = 32


@dataclass(frozen=True, slots=True)
class Commitment:
    """A version-1 commitment: 32 bytes, written in entries as 64 lowercase hex digits."""

    digest: bytes

    def __post_init__(self) -> None:
        if len(self.digest) != DIGEST_BYTES:
            raise InvalidInput(f"commitment must be {DIGEST_BYTES} bytes, got {len(self.digest)}")

    @classmethod
    def parse(cls, text: str) -> Commitment:
        """Read the hex form found in a ledger entry; anything else is an input error."""
        if not isinstance(text, str) or len(text) != 2 * DIGEST_BYTES or text != text.lower():
            raise InvalidInput("commitment must be 64 lowercase hex digits")
        try:
            return cls(bytes.fromhex(text))
        except ValueError as exc:
            raise InvalidInput("commitment must be 64 lowercase hex digits") from exc

    @property
    def hex(self) -> str:
        """The form written in ledger entries."""
        return self.digest.hex()


@dataclass(frozen=True, slots=True)
class Opening:
    """What opens a commitment: the salt and the canonical payload bytes."""

    commitment: Commitment
    salt: bytes
    canonical: bytes


def commitment_of(salt: bytes, canonical: bytes) -> Commitment:
    """The commitment to already-canonical bytes under ``salt`` (exactly 32 bytes)."""
    if len(salt) != SALT_BYTES:
        raise InvalidInput(f"commitment salt must be {SALT_BYTES} bytes, got {len(salt)}")
    return Commitment(hashlib.sha256(DOMAIN + salt + canonical).digest())


def commit(value: Any, salt: bytes | None = None) -> Opening:
    """Commit to a JSON value under ``salt`` (a fresh random one when not given)."""
    canonical = canonical_json(value)
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    return Opening(commitment_of(salt, canonical), salt, canonical)


def verify_commitment(expected: Commitment, salt: bytes, canonical: bytes) -> None:
    """Return None when ``salt`` and ``canonical`` open ``expected``; raise :class:`CommitmentMismatch` otherwise."""
    actual = commitment_of(salt, canonical)
    if not hmac.compare_digest(actual.digest, expected.digest):
        raise CommitmentMismatch(f"payload does not match its commitment: expected {expected.hex}, got {actual.hex}")


def commitment_leaf(row: int, commitment: str) -> bytes:
    """The Merkle leaf of a batch's sealed row ``row``: ``"<row> <commitment hex>"`` in ASCII.

    A batch entry's ``commitments_root`` is the RFC 9162 root over these leaves in row order, so
    one row is proven by an audit path (subject exports), without the other rows.
    """
    return f"{row} {commitment}".encode("ascii")
