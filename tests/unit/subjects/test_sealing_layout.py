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
from mlwarden.privacy import LocalKek, read_kek
from mlwarden.store.schema import privacy_keys
from mlwarden.subjects.sealing import seal_rows
from mlwarden.workspace import Workspace

INPUTS = [{"age": 41, "income": 52000.5, "region": "nörth"}, {"age": 7, "income": 1.0, "region": "south"}]
OUTPUTS = [{"label": 1, "score": 0.8125}, {"label": 0, "score": 0.25}]


def _framed(label: bytes, *parts: str) -> bytes:
    out = label + b"\x00"
    for part in parts:
        data = part.encode()
        out += len(data).to_bytes(4, "big") + data
    return out


def _hkdf(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(SHA256(), 32, None, b"mlwarden-privacy-v1\x00" + purpose).derive(secret)


def _day_key(workspace: Workspace, key_id: str) -> tuple[str, str, str, bytes]:
    """(scope tag, field, day, secret) of a stored key of the day, unwrapped as documented."""
    secret = read_kek(workspace.options.paths.privacy_kek)
    with workspace.engine.connect() as conn:
        row = conn.execute(select(privacy_keys).where(privacy_keys.c.key_id == key_id)).one()
    wrapped = bytes(row.wrapped)
    context = _framed(b"mlwarden-dek-v1", key_id, row.scope_tag, row.field, row.day)
    key = AESGCM(_hkdf(secret, b"wrap")).decrypt(wrapped[:12], wrapped[12:], context)
    return row.scope_tag, row.field, row.day, key


def _tag(workspace: Workspace, kind: str, name: str) -> str:
    tag_key = _hkdf(read_kek(workspace.options.paths.privacy_kek), b"subject-tag")
    return hmac.digest(tag_key, _framed(b"mlwarden-scope-v1", kind, name), "sha256").hex()


def _check_field(decision_id: str, field: str, key_id: str, key: bytes, blob: bytes, commitment: str,
                 value: object) -> None:  # fmt: skip
    """The documented AAD opens ``nonce || ciphertext``; the plaintext is salt || JCS and opens the commitment."""
    aad = _framed(b"mlwarden-payload-v2", decision_id, field, key_id)
    plain = AESGCM(key).decrypt(blob[:12], blob[12:], aad)
    assert json.loads(plain[32:]) == value
    assert hashlib.sha256(b"mlwarden-commit-v1\x00" + plain).hexdigest() == commitment


def test_rows_without_subject_match_the_documented_layout(workspace: Workspace) -> None:
    """No subject: one row per decision, keys HMAC(unnamed day key, label || share) with a share of its own."""
    sealed = seal_rows(workspace, ["d-1", "d-2"], INPUTS, OUTPUTS)
    rows = sealed.attachments
    assert [r[0] for r in rows] == ["d-1", "d-2"]
    assert len({r[4] for r in rows}) == 2  # two distinct shares
    assert {len(r[4] or b"") for r in rows} == {32}
    assert len({r[5][:12] for r in rows} | {r[6][:12] for r in rows}) == 4  # four distinct nonces
    unnamed = _tag(workspace, "unnamed", "rows-without-subject")
    for n, (decision_id, day, inputs_key, outputs_key, share, inputs, outputs) in enumerate(rows):
        for field, key_id, blob, values in (("inputs", inputs_key, inputs, INPUTS), ("outputs", outputs_key, outputs,
                                                                                      OUTPUTS)):  # fmt: skip
            tag, key_field, key_day, day_key = _day_key(workspace, key_id)
            assert (tag, key_field, key_day) == (unnamed, field, day)
            assert share is not None
            row_key = hmac.digest(day_key, b"mlwarden-row-key-v1\x00" + share, "sha256")
            _check_field(decision_id, field, key_id, row_key, blob, sealed.body[f"{field}_commitments"][n], values[n])


def test_subject_rows_match_the_documented_layout(workspace: Workspace) -> None:
    """Subject keys: rows name the subject's keys of the day (inputs and outputs keys differ), no share."""
    sealed = seal_rows(workspace, ["d-1", "d-2"], INPUTS, OUTPUTS, ["customer-1", "customer-1"])
    again = seal_rows(workspace, ["d-3"], INPUTS[:1], OUTPUTS[:1], ["customer-1"])  # from the ring's cache
    with workspace.engine.connect() as conn:
        stored = {r.key_id for r in conn.execute(select(privacy_keys))}
    assert len(stored) == 2
    keys = {(r[2], r[3]) for r in sealed.attachments} | {(r[2], r[3]) for r in again.attachments}
    assert len(keys) == 1
    assert set(next(iter(keys))) == stored
    subject = _tag(workspace, "subject", "customer-1")
    for n, (decision_id, day, inputs_key, outputs_key, share, inputs, outputs) in enumerate(sealed.attachments):
        assert share is None
        for field, key_id, blob, values in (("inputs", inputs_key, inputs, INPUTS), ("outputs", outputs_key, outputs,
                                                                                      OUTPUTS)):  # fmt: skip
            tag, key_field, key_day, day_key = _day_key(workspace, key_id)
            assert (tag, key_field, key_day) == (subject, field, day)
            _check_field(decision_id, field, key_id, day_key, blob, sealed.body[f"{field}_commitments"][n], values[n])


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
