"""The rows ``seal_rows`` writes follow docs/privacy.md byte for byte (rebuilt here from the documented layout)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select

from mlwarden.errors import InvalidInput
from mlwarden.privacy import KeySlot, LocalKek, Scope
from mlwarden.store.schema import privacy_keys
from mlwarden.subjects.sealing import privacy_ring, seal_rows
from mlwarden.workspace import Workspace

INPUTS = [{"age": 41, "income": 52000.5, "region": "nörth"}, {"age": 7, "income": 1.0, "region": "south"}]
OUTPUTS = [{"label": 1, "score": 0.8125}, {"label": 0, "score": 0.25}]


def _framed(label: bytes, *parts: str) -> bytes:
    out = label + b"\x00"
    for part in parts:
        data = part.encode()
        out += len(data).to_bytes(4, "big") + data
    return out


def _check_row(row: tuple[object, ...], aead: AESGCM, commitment: str, value: object) -> None:
    """The documented AAD opens the ciphertext; the plaintext is salt || JCS and opens the entry's commitment."""
    decision_id, field, key_id, _day, _kek_id, _wrapped, nonce, ciphertext = row
    assert isinstance(decision_id, str)
    assert isinstance(field, str)
    assert isinstance(key_id, str)
    assert isinstance(nonce, bytes)
    assert isinstance(ciphertext, bytes)
    assert len(nonce) == 12
    plain = aead.decrypt(nonce, ciphertext, _framed(b"mlwarden-payload-v1", decision_id, field, key_id))
    assert json.loads(plain[32:]) == value
    assert hashlib.sha256(b"mlwarden-commit-v1\x00" + plain).hexdigest() == commitment


def test_rows_without_subject_match_the_documented_layout(workspace: Workspace) -> None:
    """Own keys: each (decision, field) has its own key, wrapped inline under the documented context."""
    ring = privacy_ring(workspace)
    sealed = seal_rows(workspace, ["d-1", "d-2"], INPUTS, OUTPUTS)
    rows = sealed.attachments
    assert [(r[0], r[1]) for r in rows] == [
        ("d-1", "inputs"),
        ("d-1", "outputs"),
        ("d-2", "inputs"),
        ("d-2", "outputs"),
    ]
    assert len({r[2] for r in rows}) == 4  # four distinct keys
    assert len({r[6] for r in rows}) == 4  # four distinct nonces
    for n, row in enumerate(rows):
        decision_id, field, key_id, day, kek_id, wrapped, _nonce, _ct = row
        assert kek_id == ring.kek.kek_id
        assert isinstance(wrapped, bytes)
        slot = KeySlot(ring.scope_tag(Scope.decision(decision_id)), "inputs" if field == "inputs" else "outputs", day)
        key = ring.unwrap_row(key_id, slot, kek_id, wrapped)
        values = INPUTS if field == "inputs" else OUTPUTS
        _check_row(row, key.aead, sealed.body[f"{field}_commitments"][n // 2], values[n // 2])


def test_subject_rows_match_the_documented_layout(workspace: Workspace) -> None:
    """Subject keys: rows point at the subject's key of the day (inputs and outputs keys differ), nothing inline."""
    ring = privacy_ring(workspace)
    sealed = seal_rows(workspace, ["d-1", "d-2"], INPUTS, OUTPUTS, ["customer-1", "customer-1"])
    again = seal_rows(workspace, ["d-3"], INPUTS[:1], OUTPUTS[:1], ["customer-1"])  # from the ring's cache
    with workspace.engine.connect() as conn:
        stored = {r.key_id: r for r in conn.execute(select(privacy_keys))}
    assert len(stored) == 2
    assert {r[2] for r in sealed.attachments} == {r[2] for r in again.attachments} == set(stored)
    for n, row in enumerate(sealed.attachments):
        assert row[4] is None
        assert row[5] is None
        key_row = stored[str(row[2])]
        assert key_row.field == row[1]
        assert key_row.day == row[3]
        slot = KeySlot(key_row.scope_tag, key_row.field, key_row.day)
        key = ring.unwrap_row(key_row.key_id, slot, key_row.kek_id, bytes(key_row.wrapped))
        values = INPUTS if row[1] == "inputs" else OUTPUTS
        _check_row(row, key.aead, sealed.body[f"{row[1]}_commitments"][n // 2], values[n // 2])


@pytest.mark.parametrize(
    ("decision_ids", "subjects"),
    [(["x" * 65, "d"], None), (["", "d"], None), (["x" * 65, "d"], ["s", "t"]), (["d"], ["s", "t"])],
)
def test_bad_decision_ids_or_subject_counts_are_refused(
    workspace: Workspace, decision_ids: list[str], subjects: list[str] | None
) -> None:
    """A decision id that is empty or over 64 characters, or a subject count off by one, is an input error."""
    rows = len(decision_ids)
    with pytest.raises(InvalidInput):
        seal_rows(workspace, decision_ids, INPUTS[:rows], OUTPUTS[:rows], subjects)


@pytest.mark.parametrize("length", [0, 1, 63, 64, 65, 1000])
def test_subject_tag_is_hmac_sha256_under_the_derived_key(length: int) -> None:
    """Tags stay RFC 2104 HMAC-SHA256 under HKDF(KEK, "subject-tag") whatever the input length (stored tags match)."""
    secret = os.urandom(32)
    derived = HKDF(SHA256(), 32, None, b"mlwarden-privacy-v1\x00subject-tag").derive(secret)
    kek = LocalKek(secret)
    name = os.urandom(length)
    assert kek.subject_tag(name) == hmac.digest(derived, name, "sha256")
    assert kek.subject_tag(name) == hmac.digest(derived, name, "sha256")  # the precomputed states are not consumed
