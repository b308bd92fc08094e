"""Statements a person signs with their own key (approve a model version, release a batch), and their check.

A signed statement file is ``{"statement": {...}, "signature": "<base64>"}``; the signature is
Ed25519 over the RFC 8785 canonical JSON of ``statement``:

    {"action": "model.approve", "model": "bc", "version": 3, "sha256": "<hex>",
     "approver": "alice", "time": "2025-01-02T03:04:05Z", "expires": "2025-02-01T03:04:05Z"}
    {"action": "data.release", "dataset": "cells", "batch": "<id>", "sha256": "<hex>",
     "reason": "...", "approver": "bob", "time": "...", "expires": "..."}

``expires`` is optional; ``comment`` is optional in a model approval.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mlwarden.errors import InvalidInput, VerificationError
from mlwarden.identity.approvers import Approver, Approvers
from mlwarden.identity.personal_keys import public_key_text
from mlwarden.ledger.canonical import canonical_json

MODEL_APPROVE = "model.approve"
DATA_RELEASE = "data.release"
MAX_STATEMENT_BYTES = 64 * 1024
CLOCK_SKEW = timedelta(minutes=5)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COMMON = {"action": str, "sha256": str, "approver": str, "time": str}
_FIELDS: dict[str, tuple[dict[str, type], dict[str, type]]] = {
    MODEL_APPROVE: ({**_COMMON, "model": str, "version": int}, {"expires": str, "comment": str}),
    DATA_RELEASE: ({**_COMMON, "dataset": str, "batch": str, "reason": str}, {"expires": str}),
}


def _time(value: str, field: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"signed statement {field} {value!r} is not an RFC 3339 time") from exc
    if parsed.tzinfo is None:
        raise InvalidInput(f"signed statement {field} {value!r} has no time zone")
    return parsed


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_fields(statement: dict[str, Any]) -> None:
    action = statement.get("action")
    if action not in _FIELDS:
        raise InvalidInput(f"signed statement action {action!r} is not one of {', '.join(_FIELDS)}")
    required, optional = _FIELDS[str(action)]
    unknown = sorted(set(statement) - set(required) - set(optional))
    if unknown:
        raise InvalidInput(f"signed {action} statement has unknown field(s) {', '.join(unknown)}")
    for field, kind in {**required, **optional}.items():
        if field not in statement:
            if field in required:
                raise InvalidInput(f"signed {action} statement lacks {field}")
            continue
        value = statement[field]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise InvalidInput(f"signed {action} statement field {field} must be a {kind.__name__}")
    if not _SHA256.fullmatch(statement["sha256"]):
        raise InvalidInput("signed statement sha256 must be 64 lowercase hex characters")
    _time(statement["time"], "time")
    if "expires" in statement:
        _time(statement["expires"], "expires")


@dataclass(frozen=True, slots=True)
class SignedStatement:
    """A statement and the signature over its canonical JSON (well-formed; not yet verified)."""

    statement: dict[str, Any]
    signature: bytes

    @classmethod
    def parse(cls, data: bytes, *, source: str = "signed statement") -> SignedStatement:
        """Parse a statement file; malformed input is :class:`InvalidInput`."""
        if len(data) > MAX_STATEMENT_BYTES:
            raise InvalidInput(f"{source} is larger than {MAX_STATEMENT_BYTES} bytes")
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"{source} is not JSON") from exc
        return cls.from_json(doc, source=source)

    @classmethod
    def from_json(cls, doc: Any, *, source: str = "signed statement") -> SignedStatement:
        if not isinstance(doc, dict) or set(doc) != {"statement", "signature"}:
            raise InvalidInput(f"{source} must be an object with exactly statement and signature")
        statement, signature = doc["statement"], doc["signature"]
        if not isinstance(statement, dict) or not isinstance(signature, str):
            raise InvalidInput(f"{source}: statement must be an object and signature a base64 string")
        try:
            raw = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput(f"{source}: signature is not base64") from exc
        _check_fields(statement)
        return cls(statement, raw)

    @property
    def action(self) -> str:
        return str(self.statement["action"])

    @property
    def approver(self) -> str:
        return str(self.statement["approver"])

    def to_json(self) -> dict[str, Any]:
        return {"statement": self.statement, "signature": base64.b64encode(self.signature).decode("ascii")}


def sign_statement(statement: dict[str, Any], key: Ed25519PrivateKey) -> SignedStatement:
    """Sign a statement (checked for shape first)."""
    _check_fields(statement)
    return SignedStatement(dict(statement), key.sign(canonical_json(statement)))


def new_statement(
    action: str, approver: str, now: datetime, valid_for: timedelta | None, **fields: Any
) -> dict[str, Any]:
    """A statement dated ``now``, expiring after ``valid_for`` (None: no expiry)."""
    statement = {"action": action, "approver": approver, "time": format_time(now), **fields}
    if valid_for is not None:
        statement["expires"] = format_time(now + valid_for)
    return statement


def signer_of(key: Ed25519PrivateKey, approvers: Approvers) -> Approver:
    """The approver a private key belongs to according to the policy, or a refusal."""
    approver = approvers.by_key(key.public_key())
    if approver is None:
        raise VerificationError(
            f"the key {public_key_text(key.public_key())} is not listed under approvers in the policy"
        )
    return approver


def verify_statement(
    signed: SignedStatement, approvers: Approvers, *, expected: dict[str, Any], now: datetime | None
) -> Approver:
    """Check the signer is a listed approver, the signature, what it is about, and (with ``now``) its dates."""
    approver = approvers.by_name(signed.approver)
    if approver is None:
        raise VerificationError(f"approver {signed.approver!r} of the signed statement is not listed in the policy")
    try:
        approver.key.verify(signed.signature, canonical_json(signed.statement))
    except InvalidSignature as exc:
        raise VerificationError(
            f"signature of the {signed.action} statement does not verify with the key listed for {approver.name}"
        ) from exc
    for field, value in expected.items():
        if signed.statement.get(field) != value:
            raise VerificationError(
                f"signed statement is for {field} {signed.statement.get(field)!r}, expected {value!r}"
            )
    if now is not None:
        if _time(signed.statement["time"], "time") > now + CLOCK_SKEW:
            raise VerificationError(f"signed statement is dated in the future ({signed.statement['time']})")
        if "expires" in signed.statement and _time(signed.statement["expires"], "expires") <= now:
            raise VerificationError(f"signed statement expired at {signed.statement['expires']}")
    return approver
