"""Prediction rows (privacy_rows): one decision erased alone, shares bound to their rows, old records still open."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update

from mlwarden.ledger.entry import Entry
from mlwarden.ledger.kinds import ERASURE_KIND
from mlwarden.privacy import Erased, Opened, PayloadRequest, Scope, Tampered, erase_scope, open_many, seal
from mlwarden.privacy import store_payloads as store_v1
from mlwarden.runtime.predict import prediction_record
from mlwarden.store.schema import privacy_rows
from mlwarden.subjects.audit import audit_payloads
from mlwarden.subjects.decisions import claims
from mlwarden.subjects.sealing import privacy_ring, seal_rows
from mlwarden.workspace import Workspace

MODEL = {"name": "bc", "version": 1, "sha256": "0" * 64}
INPUTS = [{"age": 41}, {"age": 7}]
OUTPUTS = [{"label": 1}, {"label": 0}]


def _record(ws: Workspace, decisions: list[str], subjects: list[str] | None = None) -> Entry:
    sealed = seal_rows(ws, decisions, INPUTS, OUTPUTS, subjects)
    index = ws.log.append_many([prediction_record(MODEL, decisions, sealed, principal="token:t")])[0].index
    return Entry.parse(ws.log.entry(index).text)


def _open(ws: Workspace, entry: Entry) -> list[object]:
    with ws.engine.connect() as conn:
        return list(open_many(conn, privacy_ring(ws), claims(entry.body, entry.index)))


def test_erasing_one_decision_erases_both_its_fields_and_nothing_else(workspace: Workspace) -> None:
    """The share is cleared: the decision's inputs and outputs read erased; its neighbour opens; verify is clean."""
    entry = _record(workspace, ["d-1", "d-2"])
    with workspace.log.transaction() as tx:
        record = erase_scope(tx.conn, privacy_ring(workspace), Scope.decision("d-1"), reason="request",
                             now=datetime.now(UTC))  # fmt: skip
        tx.append(kind=ERASURE_KIND, subject="privacy:erasure", body=record.entry_body(), principal="local:dpo",
                  refs=(record.erasure_id,))  # fmt: skip
    assert record.key_ids == ("d-1",)
    results = _open(workspace, entry)  # inputs d-1, inputs d-2, outputs d-1, outputs d-2
    assert [type(r) for r in results] == [Erased, Opened, Erased, Opened]
    assert [r.value for r in results if isinstance(r, Opened)] == [INPUTS[1], OUTPUTS[1]]
    report = audit_payloads(workspace)
    assert report.ok
    assert (report.erased, report.verified) == (2, 2)
    with workspace.log.transaction() as tx:
        again = erase_scope(tx.conn, privacy_ring(workspace), Scope.decision("d-1"), reason="x", now=datetime.now(UTC))
    assert again.count == 0


def test_a_share_moved_to_another_row_fails_authentication(workspace: Workspace) -> None:
    """Shares are bound by the key they derive: swapped between rows, both rows fail; verify names the index."""
    entry = _record(workspace, ["d-1", "d-2"])
    r = privacy_rows.c
    with workspace.engine.begin() as conn:
        shares = dict(conn.execute(select(r.decision_id, r.share)).all())
        conn.execute(update(privacy_rows).where(r.decision_id == "d-1").values(share=shares["d-2"]))
        conn.execute(update(privacy_rows).where(r.decision_id == "d-2").values(share=shares["d-1"]))
    assert all(isinstance(result, Tampered) for result in _open(workspace, entry))
    report = audit_payloads(workspace)
    assert {t["index"] for t in report.tampered} == {entry.index}
    assert len(report.tampered) == 4


def test_a_share_deleted_without_erasure_is_tampering(workspace: Workspace) -> None:
    """Clearing a share without an erasure id does not pass for erasure: the row no longer opens and verify says so."""
    entry = _record(workspace, ["d-1", "d-2"])
    with workspace.engine.begin() as conn:
        conn.execute(update(privacy_rows).where(privacy_rows.c.decision_id == "d-2").values(share=None))
    results = _open(workspace, entry)
    assert [type(r) for r in results] == [Opened, Tampered, Opened, Tampered]
    assert not audit_payloads(workspace).ok


def test_a_subject_row_pointed_at_the_unnamed_keys_fails(workspace: Workspace) -> None:
    """A subject's row re-pointed at the day keys of rows without subject (or the reverse) does not open."""
    own = _record(workspace, ["d-1", "d-2"])
    subject = _record(workspace, ["s-1", "s-2"], ["customer-1", "customer-1"])
    r = privacy_rows.c
    with workspace.engine.begin() as conn:
        keys = conn.execute(select(r.inputs_key, r.outputs_key).where(r.decision_id == "d-1")).one()
        conn.execute(update(privacy_rows).where(r.decision_id == "s-1").values(inputs_key=keys[0], outputs_key=keys[1]))
    assert [type(x) for x in _open(workspace, subject)] == [Tampered, Opened, Tampered, Opened]
    assert all(isinstance(x, Opened) for x in _open(workspace, own))


def test_records_sealed_before_0017_still_open_and_erase(workspace: Workspace) -> None:
    """Version-1 payload rows (privacy_payloads) are still opened, and erased by a decision erasure."""
    ring = privacy_ring(workspace)
    now = datetime.now(UTC)
    requests = [PayloadRequest.for_row("old-1", "inputs", INPUTS[0]), PayloadRequest.for_row("old-1", "outputs", 3)]
    with workspace.engine.begin() as conn:
        sealed = seal(conn, ring, requests, now=now)
        store_v1(conn, sealed)
    body = {"v": 2, "decision_ids": ["old-1"], "inputs_commitments": [sealed[0].commitment.hex],
            "outputs_commitments": [sealed[1].commitment.hex]}  # fmt: skip
    opened = _open(workspace, Entry(0, "prediction", "t", "p", "s", body))
    assert [r.value for r in opened if isinstance(r, Opened)] == [INPUTS[0], 3]
    with workspace.engine.begin() as conn:
        record = erase_scope(conn, ring, Scope.decision("old-1"), reason="x", now=now)
    assert record.count == 2
    assert all(isinstance(r, Erased) for r in _open(workspace, Entry(0, "prediction", "t", "p", "s", body)))
