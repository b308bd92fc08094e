"""Feedback's expected value: a commitment in the entry, the value sealed under its subject's (or its own) key."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest
from sqlalchemy import select, update

from mlwarden.errors import VerificationError
from mlwarden.ledger.entry import Entry
from mlwarden.ledger.pins import KeyPin
from mlwarden.privacy import Erased, Opened, Scope, erase_scope, open_many
from mlwarden.registry.models import register_model
from mlwarden.runtime.predict import predict
from mlwarden.samples import SampleModel, breast_cancer_model
from mlwarden.store.schema import privacy_payloads
from mlwarden.subjects.audit import audit_payloads
from mlwarden.subjects.decisions import feedback_claims
from mlwarden.subjects.erasure import erase_data_subject
from mlwarden.subjects.expected import record_feedback
from mlwarden.subjects.export import export_subject
from mlwarden.subjects.export_check import check_export
from mlwarden.subjects.sealing import privacy_ring
from mlwarden.workspace import Workspace

EXPECTED = {"label": 0, "note": "pathology says benign"}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleModel:
    return breast_cancer_model(tmp_path_factory.mktemp("feedback") / "art", trees=5)


def _decision(ws: Workspace, sample: SampleModel, subject: str | None) -> str:
    register_model(ws, name="bc", path=sample.onnx, card_path=sample.card, principal="alice")
    rows = [list(map(float, r)) for r in pl.read_csv(sample.eval_csv).drop("target").head(1).iter_rows()]
    result = predict(ws, "bc", None, rows, "local:bob", None if subject is None else [subject])
    return str(result["decision_ids"][0])


def _feedback(ws: Workspace, decision_id: str, expected: Any = EXPECTED) -> tuple[str, Entry]:
    feedback_id = str(uuid.uuid4())
    body = {"feedback_id": feedback_id, "decision_id": decision_id, "kind": "incorrect", "comment": None}
    index = record_feedback(ws, subject="model:bc:1", principal="token:t", body=body, expected=expected)
    return feedback_id, Entry.parse(ws.log.entry(index).text)


def _open(ws: Workspace, entry: Entry) -> object:
    with ws.engine.connect() as conn:
        return open_many(conn, privacy_ring(ws), feedback_claims(entry.body, entry.index))[0]


def test_expected_is_committed_not_written_and_opens(workspace: Workspace, sample: SampleModel) -> None:
    """The entry holds a commitment and no value; the sealed value opens against it; verify counts it."""
    _id, entry = _feedback(workspace, _decision(workspace, sample, None))
    text = workspace.log.entry(entry.index).text
    assert "pathology" not in text
    assert "expected" not in entry.body
    assert len(entry.body["expected_commitment"]) == 64
    opened = _open(workspace, entry)
    assert isinstance(opened, Opened)
    assert opened.value == EXPECTED
    report = audit_payloads(workspace)
    assert report.ok
    assert report.verified == 3  # the prediction's inputs and outputs, the feedback's expected value


def test_erasing_the_subject_erases_the_expected_value(workspace: Workspace, sample: SampleModel) -> None:
    """Sealed under the decision's subject: erasing the subject makes it unreadable, and verify says erased."""
    _id, entry = _feedback(workspace, _decision(workspace, sample, "customer-7"))
    erased = erase_data_subject(workspace, "customer-7", reason="gdpr", principal="local:dpo")
    assert erased["keys_destroyed"] == 3  # inputs, outputs and expected keys of the day
    result = _open(workspace, entry)
    assert isinstance(result, Erased)
    report = audit_payloads(workspace)
    assert report.ok
    assert (report.erased, report.verified) == (3, 0)


def test_feedback_without_subject_is_erasable_on_its_own(workspace: Workspace, sample: SampleModel) -> None:
    """No subject: the value has its own key; erasing the feedback id destroys it and verify accepts the erasure."""
    feedback_id, entry = _feedback(workspace, _decision(workspace, sample, None))
    with workspace.log.transaction() as tx:
        record = erase_scope(tx.conn, privacy_ring(workspace), Scope.decision(feedback_id), reason="x",
                             now=datetime.now(UTC))  # fmt: skip
        tx.append(kind="privacy.erased", subject="privacy:erasure", body=record.entry_body(), principal="local:dpo",
                  refs=(record.erasure_id,))  # fmt: skip
    assert record.count == 1
    assert isinstance(_open(workspace, entry), Erased)
    report = audit_payloads(workspace)
    assert report.ok
    assert report.erased == 1


def test_an_altered_expected_value_is_tampering_at_its_index(workspace: Workspace, sample: SampleModel) -> None:
    """A flipped ciphertext byte of the expected value: verify names the feedback entry's index."""
    feedback_id, entry = _feedback(workspace, _decision(workspace, sample, "customer-8"))
    with workspace.engine.begin() as conn:
        p = privacy_payloads.c
        ciphertext = conn.execute(select(p.ciphertext).where(p.decision_id == feedback_id)).scalar_one()
        altered = bytes([ciphertext[0] ^ 1]) + bytes(ciphertext[1:])
        conn.execute(update(privacy_payloads).where(p.decision_id == feedback_id).values(ciphertext=altered))
    report = audit_payloads(workspace)
    assert [t["index"] for t in report.tampered] == [entry.index]
    assert "fails authentication" in report.tampered[0]["problem"]


def test_no_expected_value_seals_nothing(workspace: Workspace, sample: SampleModel) -> None:
    """Feedback without an expected value commits to nothing and stores no payload."""
    _id, entry = _feedback(workspace, _decision(workspace, sample, None), expected=None)
    assert entry.body["expected_commitment"] is None
    assert feedback_claims(entry.body, entry.index) == []
    assert audit_payloads(workspace).verified == 2


def test_subject_export_carries_the_expected_value_and_verifies(workspace: Workspace, sample: SampleModel) -> None:
    """The subject's export lists the feedback value with its salt and proof; a changed value fails offline."""
    feedback_id, _entry = _feedback(workspace, _decision(workspace, sample, "customer-9"))
    document = export_subject(workspace, "customer-9", principal="local:dpo")
    [item] = document["feedback"]
    assert (item["feedback_id"], item["expected"]) == (feedback_id, EXPECTED)
    pin = KeyPin(verifier=workspace.log.verifier)
    report = check_export(json.dumps(document), pin)
    assert report.decisions == 1
    item["expected"] = {"label": 1}
    with pytest.raises(VerificationError, match="expected value of feedback"):
        check_export(json.dumps(document), pin)
