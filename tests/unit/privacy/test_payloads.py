"""Sealing and opening payloads on SQLite and PostgreSQL, and the attacks a database writer could try."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from mlwarden.errors import InvalidInput
from mlwarden.privacy.commitments import Commitment, verify_commitment
from mlwarden.privacy.errors import KeyUnwrapFailed
from mlwarden.privacy.kek import LocalKek
from mlwarden.privacy.keys import KeyRing, KeySlot, wrap_context
from mlwarden.privacy.opening import Absent, Opened, PayloadClaim, Tampered, open_many, open_payload
from mlwarden.privacy.payloads import PayloadRequest, SealedPayload, seal, store_payloads
from mlwarden.privacy.scopes import Field, Scope
from mlwarden.store.engine import write_transaction
from mlwarden.store.schema import privacy_keys, privacy_payloads
from mlwarden.workspace import Workspace
from tests.unit.privacy.conftest import NOW


def _seal(ws: Workspace, ring: KeyRing, requests: list[PayloadRequest], **kw: Any) -> list[SealedPayload]:
    with write_transaction(ws.engine) as conn:
        sealed = seal(conn, ring, requests, now=kw.get("now", NOW))
        store_payloads(conn, sealed)
    return sealed


def _open(ws: Workspace, ring: KeyRing, decision: str, field: Field, commitment: Commitment) -> Any:
    with ws.engine.connect() as conn:
        return open_payload(conn, ring, decision, field, commitment)


def test_sealed_rows_open_to_their_values_and_commitments(workspace: Workspace, ring: KeyRing) -> None:
    """Every row of a batch opens to its own value; the opening verifies against the commitment."""
    requests = [
        PayloadRequest.for_row(f"d{i}", field, {"row": i, "field": field}, subject=f"s{i % 3}" if i % 2 else None)
        for i in range(10)
        for field in ("inputs", "outputs")
    ]
    sealed = _seal(workspace, ring, requests)
    for request, item in zip(requests, sealed, strict=True):
        result = _open(workspace, ring, request.decision_id, request.field, item.commitment)
        assert isinstance(result, Opened)
        assert result.value == request.value
        verify_commitment(item.commitment, result.salt, result.canonical)


def test_keys_are_shared_per_subject_field_and_day(workspace: Workspace, ring: KeyRing) -> None:
    """One subject's inputs on one day share a key; outputs, other days, other subjects and bare decisions do not.

    Subject keys are rows of privacy_keys; a payload without subject carries its own key inline.
    """
    sealed = _seal(
        workspace,
        ring,
        [
            PayloadRequest.for_row("a", "inputs", 1, subject="s1"),
            PayloadRequest.for_row("b", "inputs", 2, subject="s1"),
            PayloadRequest.for_row("a", "outputs", 3, subject="s1"),
            PayloadRequest.for_row("c", "inputs", 4, subject="s2"),
            PayloadRequest.for_row("d", "inputs", 5),
            PayloadRequest.for_row("e", "inputs", 6),
        ],
    )
    later = _seal(
        workspace, ring, [PayloadRequest.for_row("f", "inputs", 7, subject="s1")], now=NOW + timedelta(days=1)
    )
    ids = [s.key_id for s in sealed + later]
    assert ids[0] == ids[1]
    assert len({ids[0], *ids[2:]}) == 6
    with workspace.engine.connect() as conn:
        stored = {str(r[0]) for r in conn.execute(select(privacy_keys.c.key_id))}
        inline = {
            str(r[0])
            for r in conn.execute(select(privacy_payloads.c.key_id).where(privacy_payloads.c.wrapped_key.is_not(None)))
        }
    assert stored == {ids[0], ids[2], ids[3], ids[6]}
    assert inline == {ids[4], ids[5]}


def test_a_second_ring_reuses_stored_keys(workspace: Workspace, ring: KeyRing) -> None:
    """A fresh process (new ring, empty cache) finds the subject's key of the day instead of making another."""
    first = _seal(workspace, ring, [PayloadRequest.for_row("a", "inputs", 1, subject="s1")])
    other = KeyRing(LocalKek.load(workspace.options.paths.privacy_kek))
    second = _seal(workspace, other, [PayloadRequest.for_row("b", "inputs", 2, subject="s1")])
    assert first[0].key_id == second[0].key_id
    assert isinstance(_open(workspace, other, "a", "inputs", first[0].commitment), Opened)


def test_no_subject_id_is_stored_in_clear(workspace: Workspace, ring: KeyRing) -> None:
    """The key table holds the subject's HMAC tag, and neither it nor the payloads hold the id or the values."""
    _seal(
        workspace, ring, [PayloadRequest.for_row("d1", "inputs", {"email": "ann@example.org"}, subject="customer-42")]
    )
    with workspace.engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(select(privacy_keys))] + [
            tuple(r) for r in conn.execute(select(privacy_payloads))
        ]
    dump = repr(rows).encode()
    assert b"customer-42" not in dump
    assert b"ann@example.org" not in dump
    assert ring.scope_tag(Scope.subject("customer-42")).encode() in dump


def test_ciphertext_swapped_between_records_is_refused(workspace: Workspace, ring: KeyRing) -> None:
    """Two payloads under the same key: exchanging their ciphertexts (and nonces) fails authentication (AAD)."""
    a, b = _seal(
        workspace,
        ring,
        [
            PayloadRequest.for_row("a", "inputs", {"x": 1}, subject="s"),
            PayloadRequest.for_row("b", "inputs", {"x": 1}, subject="s"),
        ],
    )
    assert a.key_id == b.key_id
    with write_transaction(workspace.engine) as conn:
        for target, source in ((a, b), (b, a)):
            conn.execute(
                update(privacy_payloads)
                .where(privacy_payloads.c.decision_id == target.decision_id)
                .values(nonce=source.nonce, ciphertext=source.ciphertext)
            )
    for item in (a, b):
        result = _open(workspace, ring, item.decision_id, "inputs", item.commitment)
        assert result == Tampered(f"inputs ciphertext of decision {item.decision_id} fails authentication")


@pytest.mark.parametrize(("subject", "reason"), [("s1", "belongs to outputs"), (None, "does not unwrap")])
def test_ciphertext_moved_from_outputs_to_inputs_is_refused(
    workspace: Workspace, ring: KeyRing, subject: str | None, reason: str
) -> None:
    """The field is bound too: a decision's outputs record (key, wrapped key, ciphertext) copied over its inputs."""
    inputs, outputs = _seal(
        workspace,
        ring,
        [PayloadRequest.for_row("a", "inputs", 1, subject), PayloadRequest.for_row("a", "outputs", 2, subject)],
    )
    with write_transaction(workspace.engine) as conn:
        conn.execute(
            update(privacy_payloads)
            .where(privacy_payloads.c.decision_id == "a", privacy_payloads.c.field == "inputs")
            .values(
                key_id=outputs.key_id,
                kek_id=outputs.kek_id,
                wrapped_key=outputs.wrapped_key,
                nonce=outputs.nonce,
                ciphertext=outputs.ciphertext,
            )
        )
    result = _open(workspace, ring, "a", "inputs", inputs.commitment)
    assert isinstance(result, Tampered)
    assert reason in result.reason


@pytest.mark.parametrize("position", [0, 5, -1])
def test_altered_ciphertext_is_tampered(workspace: Workspace, ring: KeyRing, position: int) -> None:
    """One flipped bit anywhere in the ciphertext or tag: tampered, never a wrong value."""
    (item,) = _seal(workspace, ring, [PayloadRequest.for_row("a", "inputs", {"amount": 1200})])
    altered = bytearray(item.ciphertext)
    altered[position] ^= 0x01
    with write_transaction(workspace.engine) as conn:
        conn.execute(update(privacy_payloads).values(ciphertext=bytes(altered)))
    assert isinstance(_open(workspace, ring, "a", "inputs", item.commitment), Tampered)


def test_payload_not_matching_the_ledger_commitment_is_tampered(workspace: Workspace, ring: KeyRing) -> None:
    """A validly encrypted payload that is not the one the entry committed to (re-sealed) is tampered."""
    (original,) = _seal(workspace, ring, [PayloadRequest.for_row("a", "inputs", {"amount": 1200})])
    with write_transaction(workspace.engine) as conn:
        conn.execute(privacy_payloads.delete())
        store_payloads(conn, seal(conn, ring, [PayloadRequest.for_row("a", "inputs", {"amount": 9})], now=NOW))
    result = _open(workspace, ring, "a", "inputs", original.commitment)
    assert result == Tampered("inputs payload of decision a does not match its commitment")


def test_one_subjects_key_cannot_open_another_subjects_payload(workspace: Workspace, ring: KeyRing) -> None:
    """Pointing s2's payload at s1's key (same field and day) fails: the key id is in the associated data."""
    one, two = _seal(
        workspace,
        ring,
        [
            PayloadRequest.for_row("a", "inputs", {"v": 1}, subject="s1"),
            PayloadRequest.for_row("b", "inputs", {"v": 2}, subject="s2"),
        ],
    )
    with write_transaction(workspace.engine) as conn:
        conn.execute(update(privacy_payloads).where(privacy_payloads.c.decision_id == "b").values(key_id=one.key_id))
    assert isinstance(_open(workspace, ring, "b", "inputs", two.commitment), Tampered)


def test_wrapped_key_moved_to_another_subject_does_not_unwrap(workspace: Workspace, ring: KeyRing) -> None:
    """Copying s1's wrapped key bytes into s2's key row is refused: the wrap binds key id, scope, field, day."""
    one, two = _seal(
        workspace,
        ring,
        [
            PayloadRequest.for_row("a", "inputs", 1, subject="s1"),
            PayloadRequest.for_row("b", "inputs", 2, subject="s2"),
        ],
    )
    with write_transaction(workspace.engine) as conn:
        wrapped = conn.execute(select(privacy_keys.c.wrapped).where(privacy_keys.c.key_id == one.key_id)).scalar_one()
        conn.execute(update(privacy_keys).where(privacy_keys.c.key_id == two.key_id).values(wrapped=wrapped))
    result = _open(workspace, ring, "b", "inputs", two.commitment)
    assert isinstance(result, Tampered)
    assert "does not unwrap" in result.reason
    fresh = KeyRing(ring.kek)
    with pytest.raises(KeyUnwrapFailed, match="does not unwrap"), write_transaction(workspace.engine) as conn:
        seal(conn, fresh, [PayloadRequest.for_row("c", "inputs", 3, subject="s2")], now=NOW)


def test_key_from_another_kek_is_refused(workspace: Workspace, ring: KeyRing) -> None:
    """A key row wrapped by a different KEK (with its own kek id) is reported, not used."""
    (item,) = _seal(workspace, ring, [PayloadRequest.for_row("a", "inputs", 1, subject="s1")])
    stranger = LocalKek(b"\x07" * 32)
    slot = KeySlot(ring.scope_tag(Scope.subject("s1")), "inputs", "2026-11-26")
    with write_transaction(workspace.engine) as conn:
        conn.execute(
            update(privacy_keys)
            .where(privacy_keys.c.key_id == item.key_id)
            .values(wrapped=stranger.wrap(b"k" * 32, wrap_context(item.key_id, slot)), kek_id=stranger.kek_id)
        )
    result = _open(workspace, ring, "a", "inputs", item.commitment)
    assert isinstance(result, Tampered)
    assert "another key-encryption key" in result.reason


def test_missing_key_without_erasure_is_tampered(workspace: Workspace, ring: KeyRing) -> None:
    """Deleting a key row directly (no erasure, no tombstone) is tampering, not an erasure."""
    (item,) = _seal(workspace, ring, [PayloadRequest.for_row("a", "inputs", 1, subject="s1")])
    with write_transaction(workspace.engine) as conn:
        conn.execute(privacy_keys.delete())
    result = _open(workspace, ring, "a", "inputs", item.commitment)
    assert result == Tampered(f"data key {item.key_id} is missing and no erasure destroyed it")


def test_no_payload_row_is_absent(workspace: Workspace, ring: KeyRing) -> None:
    """A decision with no stored payload (a bundle without payloads) is Absent, distinct from erased or tampered."""
    (item,) = _seal(workspace, ring, [PayloadRequest.for_row("a", "inputs", 1)])
    assert _open(workspace, ring, "zzz", "inputs", item.commitment) == Absent()


def test_ledger_index_is_stored_when_known(workspace: Workspace, ring: KeyRing) -> None:
    """store_payloads records the entry's index beside each row when the caller knows it."""
    with write_transaction(workspace.engine) as conn:
        sealed = seal(
            conn, ring, [PayloadRequest.for_row("a", "inputs", 1), PayloadRequest.for_row("a", "outputs", 2)], now=NOW
        )
        store_payloads(conn, sealed, ledger_index=17)
    with workspace.engine.connect() as conn:
        assert {r[0] for r in conn.execute(select(privacy_payloads.c.ledger_index))} == {17}


@pytest.mark.parametrize(("decision", "field"), [("", "inputs"), ("x" * 65, "inputs"), ("a", "labels")])
def test_malformed_requests_are_input_errors(decision: str, field: str) -> None:
    """Empty or oversized decision ids and unknown fields are refused before any crypto."""
    with pytest.raises(InvalidInput):
        PayloadRequest(decision, field, 1, Scope.decision("a"))  # type: ignore[arg-type]


def test_subject_ids_and_values_never_appear_in_reprs() -> None:
    """Reprs (which end up in logs and tracebacks) redact subject ids, payload values and openings."""
    request = PayloadRequest.for_row("a", "inputs", {"email": "ann@example.org"}, subject="customer-42")
    opened = Opened({"email": "ann@example.org"}, b"s" * 32, b'{"email":"ann@example.org"}')
    for text in (repr(Scope.subject("customer-42")), repr(request), repr(opened)):
        assert "customer-42" not in text
        assert "ann@example.org" not in text


def test_own_key_moved_to_another_decision_does_not_unwrap(workspace: Workspace, ring: KeyRing) -> None:
    """A row without subject carries its wrapped key; copying a's key and ciphertext into b's row is refused."""
    a, b = _seal(workspace, ring, [PayloadRequest.for_row("a", "inputs", 1), PayloadRequest.for_row("b", "inputs", 1)])
    with write_transaction(workspace.engine) as conn:
        conn.execute(
            update(privacy_payloads)
            .where(privacy_payloads.c.decision_id == "b")
            .values(key_id=a.key_id, wrapped_key=a.wrapped_key, nonce=a.nonce, ciphertext=a.ciphertext)
        )
    result = _open(workspace, ring, "b", "inputs", b.commitment)
    assert isinstance(result, Tampered)
    assert "does not unwrap" in result.reason


def test_own_key_cleared_without_erasure_is_tampered(workspace: Workspace, ring: KeyRing) -> None:
    """Nulling a row's wrapped key directly (no erasure recorded) is tampering, not an erasure."""
    (item,) = _seal(workspace, ring, [PayloadRequest.for_row("a", "inputs", 1)])
    with write_transaction(workspace.engine) as conn:
        conn.execute(update(privacy_payloads).values(wrapped_key=None, kek_id=None))
    result = _open(workspace, ring, "a", "inputs", item.commitment)
    assert result == Tampered(f"data key {item.key_id} is missing and no erasure destroyed it")


def test_open_many_returns_each_result_in_order(workspace: Workspace, ring: KeyRing) -> None:
    """A bulk open mixes opened, tampered and absent results, each at its claim's position."""
    good, bad = _seal(
        workspace, ring, [PayloadRequest.for_row("a", "inputs", {"v": 1}), PayloadRequest.for_row("b", "inputs", 2)]
    )
    claims = [
        PayloadClaim("b", "inputs", good.commitment),  # b's payload against a's commitment
        PayloadClaim("zzz", "outputs", good.commitment),
        PayloadClaim("a", "inputs", good.commitment),
    ]
    with workspace.engine.connect() as conn:
        results = open_many(conn, ring, claims)
    assert results[0] == Tampered("inputs payload of decision b does not match its commitment")
    assert results[1] == Absent()
    assert isinstance(results[2], Opened)
    assert results[2].value == {"v": 1}
    assert bad.commitment != good.commitment


def test_concurrent_creation_of_a_subject_key_uses_the_first(workspace: Workspace, ring: KeyRing) -> None:
    """Two processes both missed a subject's key of the day: the second's insert conflicts, it adopts the first."""
    first = _seal(workspace, ring, [PayloadRequest.for_row("a", "inputs", 1, subject="s1")])[0]
    late = KeyRing(ring.kek)
    slot = late.slot(Scope.subject("s1"), "inputs", "2026-11-26")
    with write_transaction(workspace.engine) as conn:
        adopted = late._create(conn, {slot}, NOW)  # the race: it looked before the first insert committed
    assert adopted[slot].key_id == first.key_id
    with workspace.engine.connect() as conn:
        assert len(conn.execute(select(privacy_keys.c.key_id)).all()) == 1


def test_a_payload_sealed_twice_in_one_batch_is_an_input_error(workspace: Workspace, ring: KeyRing) -> None:
    """Two payloads for the same decision and field in one batch are refused before any key is made."""
    with pytest.raises(InvalidInput, match="at most once"), write_transaction(workspace.engine) as conn:
        seal(conn, ring, [PayloadRequest.for_row("a", "inputs", 1), PayloadRequest.for_row("a", "inputs", 2)], now=NOW)
