"""The errors the privacy package raises, as subclasses of the project's hierarchy."""

from __future__ import annotations

from mlwarden.errors import InvalidInput, VerificationError


class CommitmentMismatch(VerificationError):
    """A payload (salt + canonical JSON) does not hash to the commitment the ledger holds."""


class KeyUnwrapFailed(VerificationError):
    """A wrapped data key does not unwrap under the key-encryption key (wrong key, moved or altered row)."""


class IdentifierRefused(InvalidInput):
    """Free text holds an identifier (e-mail, phone, card, IBAN, national id) and the policy says refuse.

    ``kinds`` names what was found, never the values.
    """

    def __init__(self, message: str, *, kinds: tuple[str, ...]) -> None:
        super().__init__(message)
        self.kinds = kinds
