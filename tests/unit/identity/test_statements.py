"""Signed statements: the shape is parsed strictly; signer, signature, subject and dates are all checked."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mlwarden.errors import InvalidInput, VerificationError
from mlwarden.identity.approvers import Approvers, parse_approvers
from mlwarden.identity.personal_keys import create_personal_key, load_personal_key
from mlwarden.identity.statements import SignedStatement, new_statement, sign_statement, verify_statement
from mlwarden.ledger.canonical import canonical_json

SHA = "ab" * 32
NOW = datetime(2030, 1, 1, tzinfo=UTC)
EXPECTED = {"action": "model.approve", "model": "bc", "version": 3, "sha256": SHA}


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Approvers, SignedStatement]:
    bob = create_personal_key("bob", tmp_path)
    approvers = parse_approvers([{"name": "bob", "key": bob.public_text}])
    statement = new_statement("model.approve", "bob", NOW, timedelta(days=1), model="bc", version=3, sha256=SHA)
    return approvers, sign_statement(statement, load_personal_key(bob.private_key))


def test_a_signed_statement_round_trips_and_verifies(setup: tuple[Approvers, SignedStatement]) -> None:
    """The signature is Ed25519 over the canonical JSON of the statement; the file form parses back."""
    approvers, signed = setup
    again = SignedStatement.parse(canonical_json(signed.to_json()))
    assert verify_statement(again, approvers, expected=EXPECTED, now=NOW).principal == "key:bob"
    approvers.entries[0].key.verify(signed.signature, canonical_json(signed.statement))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sha256": "cd" * 32}, "signature"),
        ({"approver": "mallory"}, "not listed"),
        ({"version": 4}, "signature"),
    ],
)
def test_an_altered_statement_is_refused(
    setup: tuple[Approvers, SignedStatement], change: dict[str, object], message: str
) -> None:
    """Any field changed after signing fails verification."""
    approvers, signed = setup
    altered = SignedStatement({**signed.statement, **change}, signed.signature)
    with pytest.raises(VerificationError, match=message):
        verify_statement(altered, approvers, expected=EXPECTED, now=NOW)


def test_subject_and_dates_are_checked(setup: tuple[Approvers, SignedStatement]) -> None:
    """Another version or sha256, an expired or a future-dated statement is refused."""
    approvers, signed = setup
    with pytest.raises(VerificationError, match="sha256"):
        verify_statement(signed, approvers, expected={**EXPECTED, "sha256": "cd" * 32}, now=NOW)
    with pytest.raises(VerificationError, match="version"):
        verify_statement(signed, approvers, expected={**EXPECTED, "version": 2}, now=NOW)
    with pytest.raises(VerificationError, match="action"):
        verify_statement(signed, approvers, expected={**EXPECTED, "action": "data.release"}, now=NOW)
    with pytest.raises(VerificationError, match="expired"):
        verify_statement(signed, approvers, expected=EXPECTED, now=NOW + timedelta(days=2))
    with pytest.raises(VerificationError, match="future"):
        verify_statement(signed, approvers, expected=EXPECTED, now=NOW - timedelta(hours=1))
    verify_statement(signed, approvers, expected=EXPECTED, now=None)  # dates are checked on submission only


def test_a_bit_flipped_signature_is_refused(setup: tuple[Approvers, SignedStatement]) -> None:
    """One flipped bit in the signature fails."""
    approvers, signed = setup
    flipped = bytes([signed.signature[0] ^ 1]) + signed.signature[1:]
    with pytest.raises(VerificationError, match="signature"):
        verify_statement(SignedStatement(signed.statement, flipped), approvers, expected=EXPECTED, now=NOW)


@pytest.mark.parametrize(
    "doc",
    [
        b"not json",
        b"[]",
        b'{"statement": {}, "signature": ""}',
        b'{"statement": {"action": "model.approve"}, "signature": "AAAA"}',
        b'{"statement": {"action": "root.grant"}, "signature": "AAAA"}',
    ],
)
def test_malformed_statement_files_are_bad_input(doc: bytes) -> None:
    """Not JSON, wrong shape, missing fields or an unknown action: InvalidInput (exit 2), never a crash."""
    with pytest.raises(InvalidInput):
        SignedStatement.parse(doc)


def test_unknown_fields_and_wrong_types_are_bad_input(setup: tuple[Approvers, SignedStatement]) -> None:
    """Extra fields, a boolean version, a short sha256, a bad time or base64: InvalidInput."""
    _, signed = setup
    good = signed.to_json()
    bad_statements = [
        {**good["statement"], "extra": 1},
        {**good["statement"], "version": True},
        {**good["statement"], "sha256": "abc"},
        {**good["statement"], "time": "yesterday"},
        {**good["statement"], "time": "2030-01-01T00:00:00"},
    ]
    for statement in bad_statements:
        with pytest.raises(InvalidInput):
            SignedStatement.from_json({"statement": statement, "signature": good["signature"]})
    with pytest.raises(InvalidInput):
        SignedStatement.from_json({**good, "signature": "@@@"})
    with pytest.raises(InvalidInput):
        SignedStatement.from_json({**good, "key": base64.b64encode(b"x").decode()})
    with pytest.raises(InvalidInput):
        SignedStatement.parse(b" " * 70_000)
