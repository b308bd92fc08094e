"""The key an auditor trusts: a pinned verifier key or key fingerprint, never the one a bundle carries.

A fingerprint is the lowercase hex SHA-256 of the 32 raw Ed25519 public key bytes
(:attr:`NoteVerifier.fingerprint`); ``mlwarden init`` prints it. It may be written with a
``sha256:`` prefix and in either case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlwarden.errors import InvalidInput, KeyMismatch
from mlwarden.ledger.notes import NoteVerifier
from mlwarden.ledger.verify import KEY_MISMATCH

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def parse_fingerprint(text: str) -> str:
    """Normalise a key fingerprint to 64 lowercase hex digits; raise :class:`InvalidInput` if it is not one."""
    value = text.strip().lower().removeprefix("sha256:")
    if not _HEX64.fullmatch(value):
        raise InvalidInput(
            "key fingerprint must be the 64 hex digits of SHA-256 over the raw ed25519 public key "
            "(as `mlwarden init` prints it)"
        )
    return value


def describe(verifier: NoteVerifier) -> str:
    """``name (fingerprint <hex>)``, for messages."""
    return f"{verifier.name} (fingerprint {verifier.fingerprint})"


@dataclass(frozen=True, slots=True)
class KeyPin:
    """What the auditor pinned: a verifier key, a key fingerprint, or both (which must then agree)."""

    verifier: NoteVerifier | None = None
    fingerprint: str | None = None

    def __post_init__(self) -> None:
        if self.verifier is None and self.fingerprint is None:
            raise InvalidInput("a key pin needs a public key or a key fingerprint")
        if self.fingerprint is not None:
            object.__setattr__(self, "fingerprint", parse_fingerprint(self.fingerprint))
        if self.verifier is not None and self.fingerprint not in (None, self.verifier.fingerprint):
            raise InvalidInput(
                f"the public key {describe(self.verifier)} does not have the pinned fingerprint {self.fingerprint}"
            )

    def resolve(self, offered: NoteVerifier | None, *, holder: str = "the bundle") -> NoteVerifier:
        """The key to verify with, given the key ``holder`` offered (``None`` when it has none usable).

        Raises :class:`KeyMismatch` when the offered key is not the pinned one.
        """
        if self.verifier is not None:
            if offered is not None and (
                offered.name != self.verifier.name or offered.public_raw != self.verifier.public_raw
            ):
                raise KeyMismatch(
                    f"{KEY_MISMATCH}: {holder}'s key is {describe(offered)}, not the pinned {describe(self.verifier)}"
                )
            return self.verifier
        if offered is None:
            raise KeyMismatch(
                f"{KEY_MISMATCH}: {holder} has no readable public key to match the pinned fingerprint "
                f"{self.fingerprint}; pin the key itself with --public-key"
            )
        if offered.fingerprint != self.fingerprint:
            raise KeyMismatch(
                f"{KEY_MISMATCH}: {holder}'s key is {describe(offered)}, not the pinned fingerprint {self.fingerprint}"
            )
        return offered
