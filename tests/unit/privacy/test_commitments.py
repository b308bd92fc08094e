"""Salted commitments: the documented byte layout, round-trips, and any change to payload or salt fails."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlwarden.errors import InvalidInput
from mlwarden.ledger.canonical import canonical_json
from mlwarden.privacy.commitments import SALT_BYTES, Commitment, commit, commitment_of, verify_commitment
from mlwarden.privacy.errors import CommitmentMismatch

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.floats(-1e15, 1e15) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
salts = st.binary(min_size=SALT_BYTES, max_size=SALT_BYTES)


def test_byte_layout_is_domain_salt_then_canonical_json() -> None:
    """A known answer computed by hand from the documented layout: SHA-256(domain || salt || JCS)."""
    salt = bytes(range(32))
    opening = commit({"b": 1, "a": [True, None]}, salt)
    expected = hashlib.sha256(b"mlwarden-commit-v1\x00" + salt + b'{"a":[true,null],"b":1}').hexdigest()
    assert opening.commitment.hex == expected
    assert opening.canonical == b'{"a":[true,null],"b":1}'


@settings(max_examples=200, deadline=None)
@given(json_values, salts)
def test_commit_then_verify_round_trips(value: Any, salt: bytes) -> None:
    """The salt and canonical bytes of a commitment open it, and the bytes parse back to the value."""
    opening = commit(value, salt)
    verify_commitment(opening.commitment, opening.salt, opening.canonical)
    assert canonical_json(json.loads(opening.canonical)) == opening.canonical == canonical_json(value)
    assert Commitment.parse(opening.commitment.hex) == opening.commitment


@settings(max_examples=200, deadline=None)
@given(json_values, json_values, salts)
def test_another_payload_does_not_open_the_commitment(value: Any, other: Any, salt: bytes) -> None:
    """Opening with a different canonical payload fails (unless it is canonically the same payload)."""
    opening = commit(value, salt)
    changed = commit(other, salt).canonical
    if changed == opening.canonical:
        return
    with pytest.raises(CommitmentMismatch, match="does not match its commitment"):
        verify_commitment(opening.commitment, salt, changed)


@settings(max_examples=200, deadline=None)
@given(json_values, salts, st.integers(0, SALT_BYTES * 8 - 1))
def test_any_flipped_salt_bit_fails(value: Any, salt: bytes, bit: int) -> None:
    """Flipping any one bit of the salt breaks the opening."""
    opening = commit(value, salt)
    flipped = bytearray(salt)
    flipped[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(CommitmentMismatch):
        verify_commitment(opening.commitment, bytes(flipped), opening.canonical)


@settings(max_examples=100, deadline=None)
@given(json_values, salts, salts)
def test_different_salts_give_different_commitments(value: Any, salt: bytes, other: bytes) -> None:
    """The same payload under two different salts commits to two different digests."""
    if salt == other:
        return
    assert commit(value, salt).commitment != commit(value, other).commitment


def test_fresh_salts_hide_equal_low_entropy_payloads() -> None:
    """Without a given salt each commitment to the same yes/no answer differs (no dictionary attack)."""
    digests = {commit({"approved": True}).commitment.hex for _ in range(50)}
    assert len(digests) == 50


@pytest.mark.parametrize("salt", [b"", b"x" * 31, b"x" * 33])
def test_salt_of_wrong_length_is_refused(salt: bytes) -> None:
    """The layout needs exactly 32 salt bytes; any other length is an input error, not a silent digest."""
    with pytest.raises(InvalidInput, match="salt must be 32 bytes"):
        commitment_of(salt, b"{}")


@pytest.mark.parametrize("text", ["", "ab", "G" * 64, "A" * 64, "a" * 63, "a" * 65, " " + "a" * 63])
def test_parse_refuses_anything_but_64_lowercase_hex(text: str) -> None:
    """Commitments in entries are exactly 64 lowercase hex digits."""
    with pytest.raises(InvalidInput, match="64 lowercase hex"):
        Commitment.parse(text)


def test_payload_outside_json_is_an_input_error() -> None:
    """NaN cannot be canonicalised, so it cannot be committed to."""
    with pytest.raises(InvalidInput, match="NaN"):
        commit({"x": float("nan")})
