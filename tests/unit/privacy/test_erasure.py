"""Erasure and retention on SQLite and PostgreSQL: what is destroyed, what stays readable, and restored keys."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select

from mlwarden.errors import InvalidInput
from mlwarden.privacy.erasure import erase_scope, erase_subject, expire_inputs, retention_cutoff
from mlwarden.privacy.kek import LocalKek
from mlwarden.privacy.keys import KeyRing, KeySlot, wrap_context
from mlwarden.privacy.opening import Erased, Opened, Tampered, open_payload
from mlwarden.privacy.payloads import PayloadRequest, SealedPayload, seal, store_payloads
from mlwarden.privacy.scopes import Scope
from mlwarden.store.engine import write_transaction
from mlwarden.store.schema import privacy_erasures, privacy_keys
from mlwarden.workspace import Workspace
from tests.unit.privacy.conftest import NOW


def _seal_rows(
    ws: Workspace, ring: KeyRing, rows: list[tuple[str, str | None]], *, days_ago: int = 0
) -> dict[str, list[SealedPayload]]:
    """Seal inputs and outputs for each (decision, subject) row, ``days_ago`` before NOW."""
    with write_transaction(ws.engine) as conn:
        requests = [
            PayloadRequest.for_row(decision, field, {"decision": decision, "field": field}, subject=subject)
            for decision, subject in rows
            for field in ("inputs", "outputs")
        ]
        sealed = seal(conn, ring, requests, now=NOW - timedelta(days=days_ago))
        store_payloads(conn, sealed)
    out: dict[str, list[SealedPayload]] = {}
    for item in sealed:
        out.setdefault(item.decision_id, []).append(item)
    return out


def _status(ws: Workspace, ring: KeyRing, item: SealedPayload) -> Opened | Erased | Tampered | object:
    with ws.engine.connect() as conn:
        return open_payload(conn, ring, item.decision_id, item.field, item.commitment)


def test_erasing_a_subject_makes_all_their_payloads_unreadable_at_once(workspace: Workspace, ring: KeyRing) -> None:
    """Across days and fields, every payload of the subject is Erased with the erasure's id; others still open."""
    today = _seal_rows(workspace, ring, [("a", "s1"), ("b", "s2"), ("c", None)])
    earlier = _seal_rows(workspace, ring, [("d", "s1")], days_ago=3)
    with write_transaction(workspace.engine) as conn:
        record = erase_subject(conn, ring, "s1", reason="gdpr article 17 request", now=NOW)
    assert record.count == 4  # inputs + outputs, two days
    erased = today["a"] + earlier["d"]
    assert {s.key_id for s in erased} == set(record.key_ids)
    for item in erased:
        assert _status(workspace, ring, item) == Erased(item.key_id, record.erasure_id)
    for item in today["b"] + today["c"]:
        assert isinstance(_status(workspace, ring, item), Opened)


def test_erasure_reaches_a_process_that_had_the_key_cached(workspace: Workspace, ring: KeyRing) -> None:
    """Another ring that sealed (and cached) the subject's key cannot open their payloads after the erasure."""
    other = KeyRing(ring.kek)
    sealed = _seal_rows(workspace, other, [("a", "s1")])
    with write_transaction(workspace.engine) as conn:
        erase_subject(conn, ring, "s1", reason="request", now=NOW)
    for item in sealed["a"]:
        assert isinstance(_status(workspace, other, item), Erased)


def test_sealing_after_erasure_uses_a_new_key(workspace: Workspace, ring: KeyRing) -> None:
    """A subject seen again after erasure gets a fresh key; the new payload opens, the old stays erased."""
    old = _seal_rows(workspace, ring, [("a", "s1")])
    with write_transaction(workspace.engine) as conn:
        erase_subject(conn, ring, "s1", reason="request", now=NOW)
    new = _seal_rows(workspace, ring, [("b", "s1")])
    assert {s.key_id for s in new["b"]}.isdisjoint(s.key_id for s in old["a"])
    assert all(isinstance(_status(workspace, ring, s), Opened) for s in new["b"])
    assert all(isinstance(_status(workspace, ring, s), Erased) for s in old["a"])


def test_erasing_an_unknown_subject_is_a_clear_no_op(workspace: Workspace, ring: KeyRing) -> None:
    """No keys for that subject: a record with count 0, no tombstone written, other data untouched."""
    sealed = _seal_rows(workspace, ring, [("a", "s1")])
    with write_transaction(workspace.engine) as conn:
        record = erase_subject(conn, ring, "nobody", reason="request", now=NOW)
        tombstones = conn.execute(select(func.count()).select_from(privacy_erasures)).scalar_one()
    assert (record.count, record.key_ids, tombstones) == (0, (), 0)
    assert all(isinstance(_status(workspace, ring, s), Opened) for s in sealed["a"])


def test_erasing_twice_destroys_nothing_the_second_time(workspace: Workspace, ring: KeyRing) -> None:
    """A repeated erasure is a no-op; the payloads keep pointing at the first erasure."""
    sealed = _seal_rows(workspace, ring, [("a", "s1")])
    with write_transaction(workspace.engine) as conn:
        first = erase_subject(conn, ring, "s1", reason="request", now=NOW)
        second = erase_subject(conn, ring, "s1", reason="request again", now=NOW)
    assert (first.count, second.count) == (2, 0)
    status = _status(workspace, ring, sealed["a"][0])
    assert isinstance(status, Erased)
    assert status.erasure_id == first.erasure_id


def test_erasing_a_decision_destroys_only_its_keys(workspace: Workspace, ring: KeyRing) -> None:
    """A decision without subject is erasable by its id alone."""
    sealed = _seal_rows(workspace, ring, [("a", None), ("b", None)])
    with write_transaction(workspace.engine) as conn:
        record = erase_scope(conn, ring, Scope.decision("a"), reason="request", now=NOW)
    assert record.count == 2
    assert record.what == "decision"
    assert all(isinstance(_status(workspace, ring, s), Erased) for s in sealed["a"])
    assert all(isinstance(_status(workspace, ring, s), Opened) for s in sealed["b"])


def test_erasure_record_never_holds_the_subject(workspace: Workspace, ring: KeyRing) -> None:
    """The ledger body of an erasure has ids and counts, not the subject id nor its tag."""
    _seal_rows(workspace, ring, [("a", "customer-42")])
    with write_transaction(workspace.engine) as conn:
        record = erase_subject(conn, ring, "customer-42", reason="request", now=NOW)
    body = repr(record.entry_body())
    assert "customer-42" not in body
    assert ring.scope_tag(Scope.subject("customer-42")) not in body
    assert record.entry_body()["keys_destroyed"] == 2


def test_restored_key_row_is_never_used_after_erasure(workspace: Workspace, ring: KeyRing) -> None:
    """Re-inserting the destroyed key row (e.g. from a backup) does not bring the payload back: the tombstone wins."""
    sealed = _seal_rows(workspace, ring, [("a", "s1")])
    with workspace.engine.connect() as conn:
        backup = [dict(r._mapping) for r in conn.execute(select(privacy_keys))]
    with write_transaction(workspace.engine) as conn:
        erase_subject(conn, ring, "s1", reason="request", now=NOW)
        conn.execute(insert(privacy_keys), backup)
    assert all(isinstance(_status(workspace, ring, s), Erased) for s in sealed["a"])
    fresh = _seal_rows(workspace, KeyRing(ring.kek), [("b", "s1")])
    assert {s.key_id for s in fresh["b"]}.isdisjoint(r["key_id"] for r in backup)


def test_reinserted_key_wrapped_under_another_kek_is_refused(workspace: Workspace, ring: KeyRing) -> None:
    """A writer who deletes the tombstone and re-inserts the key id wrapped under their own KEK gets Tampered."""
    sealed = _seal_rows(workspace, ring, [("a", "s1")])
    item = sealed["a"][0]
    slot = KeySlot(ring.scope_tag(Scope.subject("s1")), "inputs", "2026-11-26")
    forger = LocalKek(b"\x09" * 32)
    with write_transaction(workspace.engine) as conn:
        erase_subject(conn, ring, "s1", reason="request", now=NOW)
        conn.execute(privacy_erasures.delete())
        conn.execute(
            insert(privacy_keys).values(
                key_id=item.key_id,
                scope_tag=slot.scope_tag,
                field="inputs",
                day=slot.day,
                kek_id=ring.kek.kek_id,
                wrapped=forger.wrap(b"k" * 32, wrap_context(item.key_id, slot)),
                created=NOW.isoformat(),
            )
        )
    result = _status(workspace, ring, item)
    assert isinstance(result, Tampered)
    assert "does not unwrap" in result.reason


def test_retention_erases_exactly_the_expired_inputs(workspace: Workspace, ring: KeyRing) -> None:
    """Inputs of days before the cut-off are erased; newer inputs and every output stay readable."""
    old = _seal_rows(workspace, ring, [("old-s", "s1"), ("old-d", None)], days_ago=31)
    edge = _seal_rows(workspace, ring, [("edge", "s1")], days_ago=30)
    new = _seal_rows(workspace, ring, [("new", "s1")], days_ago=1)
    with write_transaction(workspace.engine) as conn:
        record = expire_inputs(conn, ring, inputs_retention_days=30, now=NOW)
    assert record.what == "retention"
    assert "inputs before 2026-10-27" in record.reason
    for group in (old["old-s"], old["old-d"]):
        inputs, outputs = group
        assert (inputs.field, outputs.field) == ("inputs", "outputs")
        assert isinstance(_status(workspace, ring, inputs), Erased)
        assert isinstance(_status(workspace, ring, outputs), Opened)
    assert set(record.key_ids) == {old["old-s"][0].key_id, old["old-d"][0].key_id}
    assert all(isinstance(_status(workspace, ring, s), Opened) for s in edge["edge"] + new["new"])


def test_retention_cutoff_never_erases_early() -> None:
    """The cut-off day is the day N days ago: anything erased was written more than N days before now."""
    assert retention_cutoff(NOW, 30) == "2026-10-27"
    assert retention_cutoff(NOW.replace(hour=0, minute=0), 1) == "2026-11-25"


@pytest.mark.parametrize("days", [0, -1, True, 1.5])
def test_retention_needs_a_positive_whole_number_of_days(days: object) -> None:
    """Zero, negative, boolean or fractional retention is an input error (it would erase everything)."""
    with pytest.raises(InvalidInput, match="inputs_retention_days"):
        retention_cutoff(NOW, days)  # type: ignore[arg-type]


@pytest.mark.parametrize("reason", ["", "   ", "x" * 501])
def test_erasure_needs_a_reason(workspace: Workspace, ring: KeyRing, reason: str) -> None:
    """Every erasure says why, in bounded text; nothing is destroyed without one."""
    _seal_rows(workspace, ring, [("a", "s1")])
    with pytest.raises(InvalidInput, match="reason"), write_transaction(workspace.engine) as conn:
        erase_subject(conn, ring, "s1", reason=reason, now=NOW)
    with workspace.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(privacy_keys)).scalar_one() == 2


def test_erasure_rolled_back_with_its_transaction(workspace: Workspace, ring: KeyRing) -> None:
    """If the ledger append of the erasure fails, the keys are still there (same transaction)."""
    sealed = _seal_rows(workspace, ring, [("a", "s1")])

    def erase_then_fail_to_append() -> None:
        with write_transaction(workspace.engine) as conn:
            erase_subject(conn, ring, "s1", reason="request", now=NOW)
            raise RuntimeError("ledger append failed")

    with pytest.raises(RuntimeError, match="ledger append failed"):
        erase_then_fail_to_append()
    ring.forget()
    assert all(isinstance(_status(workspace, ring, s), Opened) for s in sealed["a"])
    with workspace.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(privacy_erasures)).scalar_one() == 0


def test_retention_record_commits_to_its_keys_without_listing_them(workspace: Workspace, ring: KeyRing) -> None:
    """A retention entry names its cut-off, the count and the SHA-256 of the sorted key ids (not the ids)."""
    old = _seal_rows(workspace, ring, [("a", None), ("b", "s1")], days_ago=40)
    with write_transaction(workspace.engine) as conn:
        record = expire_inputs(conn, ring, inputs_retention_days=30, now=NOW)
    body = record.entry_body()
    ids = sorted(items[0].key_id for items in old.values())
    assert body["inputs_before"] == "2026-10-27"
    assert body["keys_destroyed"] == 2
    assert body["key_ids_sha256"] == hashlib.sha256("\n".join(ids).encode()).hexdigest()
    assert "key_ids" not in body


def test_subject_erasure_body_lists_its_key_ids(workspace: Workspace, ring: KeyRing) -> None:
    """A subject erasure's body lists the key ids it destroyed (few per subject), sorted, for verify to match."""
    sealed = _seal_rows(workspace, ring, [("c", "s2")])
    with write_transaction(workspace.engine) as conn:
        record = erase_subject(conn, ring, "s2", reason="request", now=NOW)
    assert record.entry_body()["key_ids"] == sorted(s.key_id for s in sealed["c"])


def test_retention_runs_again_without_destroying_twice(workspace: Workspace, ring: KeyRing) -> None:
    """A second retention run the same day finds nothing more to erase; earlier erasures keep their id."""
    old = _seal_rows(workspace, ring, [("a", None)], days_ago=40)
    with write_transaction(workspace.engine) as conn:
        first = expire_inputs(conn, ring, inputs_retention_days=30, now=NOW)
        second = expire_inputs(conn, ring, inputs_retention_days=30, now=NOW)
    assert (first.count, second.count) == (1, 0)
    status = _status(workspace, ring, old["a"][0])
    assert status == Erased(old["a"][0].key_id, first.erasure_id)
