"""Registration attestations: Ed25519 over the canonical JSON of what was registered."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from cryptography.exceptions import InvalidSignature

from mlwarden.errors import ArtifactIntegrityError
from mlwarden.ledger.canonical import canonical_json
from mlwarden.ledger.notes import NoteSigner, NoteVerifier


def sign_claims(signer: NoteSigner, claims: dict[str, Any]) -> str:
    """Base64 Ed25519 signature of ``claims`` (RFC 8785 bytes) with the workspace key."""
    return base64.b64encode(signer.private_key.sign(canonical_json(claims))).decode()


def check_claims(verifier: NoteVerifier, claims: dict[str, Any], attestation: str, what: str) -> None:
    """Raise :class:`ArtifactIntegrityError` unless ``attestation`` signs exactly ``claims``."""
    try:
        verifier.public_key.verify(base64.b64decode(attestation, validate=True), canonical_json(claims))
    except (InvalidSignature, binascii.Error, ValueError) as exc:
        raise ArtifactIntegrityError(
            f"{what}: registration signature does not match its name, version and hashes"
        ) from exc
