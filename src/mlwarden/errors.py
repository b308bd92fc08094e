"""The exception hierarchy every layer raises; each error carries a one-line user message."""

from __future__ import annotations

from typing import Any


class MlwardenError(Exception):
    """Base of every error mlwarden raises on purpose.

    ``message`` is safe to show a user: one line, lowercase, no secret.
    ``exit_code`` is what the CLI exits with when this error ends a command.
    """

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidInput(MlwardenError):
    """The caller supplied data that cannot be accepted (malformed JSON, wrong type, NaN...)."""

    exit_code = 2


class ConfigError(MlwardenError):
    """Settings or workspace files are missing or unusable."""

    exit_code = 2


class WorkspaceNotFound(ConfigError):
    """No initialised workspace where one was expected."""


class KeyFileError(ConfigError):
    """A key file is missing, unreadable or not the kind of key expected."""


class StoreError(MlwardenError):
    """The database could not be reached or did not accept a write."""

    exit_code = 3


class LedgerUnavailable(StoreError):
    """The ledger could not durably record an entry; the caller must fail closed."""


class VerificationError(MlwardenError):
    """A proof, signature or recomputed hash did not match what was claimed."""


class IntegrityError(VerificationError):
    """Stored state contradicts a signed checkpoint: tampering, truncation or rollback."""

    def __init__(self, message: str, *, index: int | None = None, problem: str = "changed") -> None:
        super().__init__(message)
        self.index = index
        self.problem = problem


class TamperedRow(VerificationError):
    """A stored row that something enforces disagrees with the verified ledger or its signature."""


class KeyMismatch(VerificationError):
    """A signature or key is not by the key that was pinned or expected (e.g. a re-signed bundle)."""


class NotFound(MlwardenError):
    """A named thing (entry, checkpoint, model...) does not exist."""

    exit_code = 2


class UnsafeArtifact(MlwardenError):
    """A model file that could run code when loaded (pickle family, untrusted types)."""

    def __init__(self, message: str, *, found: tuple[str, ...] = (), kind: str = "pickle") -> None:
        super().__init__(message)
        self.found = found
        self.kind = kind


class ArtifactIntegrityError(VerificationError):
    """Stored artifact bytes or their registration signature no longer match."""


class ValidationError(InvalidInput):
    """A prediction request does not match the model's input signature."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Unauthenticated(MlwardenError):
    """No usable credentials were presented (missing, malformed, unknown, expired, revoked)."""


class PolicyDenied(MlwardenError):
    """The policy decision point said no."""


class RateLimited(MlwardenError):
    """Too many requests from one principal; ``retry_after`` is in seconds."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PayloadTooLarge(InvalidInput):
    """A request body or batch beyond the configured limit (``limit`` in bytes, when known)."""

    def __init__(self, message: str, *, limit: int | None = None) -> None:
        super().__init__(message)
        self.limit = limit


class GateFailed(MlwardenError):
    """A promotion was refused because a gate did not pass; ``results`` holds the gate table."""

    def __init__(self, message: str, *, results: list[Any]) -> None:
        super().__init__(message)
        self.results = results


class ModelNotServable(StoreError):
    """The production version lacks a recorded, gated promotion (or its stage was changed directly)."""
