"""Prediction entries v2: commitments in the leaf, payloads sealed beside it, erasable without breaking proofs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from sqlalchemy import func, select

from mlwarden.errors import InvalidInput, LedgerUnavailable
from mlwarden.ledger import merkle
from mlwarden.ledger.entry import Entry
from mlwarden.ledger.kinds import ERASURE_KIND
from mlwarden.ledger.notes import Checkpoint
from mlwarden.registry.models import register_model
from mlwarden.runtime.predict import predict, prediction_record
from mlwarden.samples import SampleModel, breast_cancer_model
from mlwarden.store.schema import privacy_rows
from mlwarden.subjects.decisions import decision_payloads, prediction_payloads
from mlwarden.subjects.erasure import erase_data_subject, expire_old_inputs
from mlwarden.subjects.sealing import check_subjects, seal_rows
from mlwarden.workspace import Workspace


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleModel:
    return breast_cancer_model(tmp_path_factory.mktemp("sealed") / "art", trees=5)


def _rows(sample: SampleModel, n: int) -> list[list[float]]:
    frame = pl.read_csv(sample.eval_csv).drop("target").head(n)
    return [list(map(float, row)) for row in frame.iter_rows()]


def _entry(ws: Workspace, index: int) -> Entry:
    return Entry.parse(ws.log.entry(index).text)


def _proves(ws: Workspace, index: int) -> None:
    """The entry's inclusion proof verifies against the signed head (raises otherwise)."""
    head = Checkpoint.open(ws.log.head_note(), ws.log.verifier)
    proof = ws.log.inclusion_proof(index, head.size)
    leaf = merkle.leaf_hash(ws.log.entry(index).text.encode())
    merkle.verify_inclusion(leaf, index, head.size, proof.path, head.root)


def test_entry_commits_to_rows_and_never_holds_them(workspace: Workspace, sample: SampleModel) -> None:
    """The leaf holds facts and one commitment per row; the inputs are nowhere in its text; they open back."""
    register_model(workspace, name="bc", path=sample.onnx, card_path=sample.card, principal="alice")
    rows = _rows(sample, 3)
    result = predict(workspace, "bc", None, rows, "local:bob", ["customer-1", "customer-2", "customer-1"])
    text = workspace.log.entry(result["ledger_index"]).text
    assert json.dumps(rows[0][0]) not in text.split('"decision_ids"')[1].split('"inputs_commitments"')[0]
    assert str(rows[0][3]) not in text
    entry = _entry(workspace, result["ledger_index"])
    assert entry.body["v"] == 2
    assert (entry.body["model"], entry.body["version"]) == ("bc", 1)
    assert len(entry.body["inputs_commitments"]) == len(entry.body["outputs_commitments"]) == 3
    assert prediction_payloads(workspace, entry.to_json()) == {"inputs": rows, "outputs": result["predictions"]}
    with workspace.engine.connect() as conn:
        indexes = set(conn.execute(select(privacy_rows.c.ledger_index)).scalars())
    assert indexes == {result["ledger_index"]}


def test_erasing_a_subject_keeps_facts_and_proofs(workspace: Workspace, sample: SampleModel) -> None:
    """After erasure the subject's rows read as erased (naming the erasure entry); others still open; proofs hold."""
    register_model(workspace, name="bc", path=sample.onnx, card_path=sample.card, principal="alice")
    rows = _rows(sample, 2)
    result = predict(workspace, "bc", None, rows, "local:bob", ["customer-42", "customer-7"])
    index = result["ledger_index"]
    before = workspace.log.entry(index).text
    erased = erase_data_subject(workspace, "customer-42", reason="gdpr art. 17", principal="local:dpo")
    assert erased["keys_destroyed"] == 2  # inputs and outputs keys of the day
    erasure = _entry(workspace, erased["ledger_index"])
    assert erasure.kind == ERASURE_KIND
    assert "customer-42" not in workspace.log.entry(erased["ledger_index"]).text
    assert workspace.log.entry(index).text == before
    _proves(workspace, index)
    _proves(workspace, erased["ledger_index"])
    entry = _entry(workspace, index).to_json()
    gone = {"erased": True, "erasure_index": erased["ledger_index"]}
    assert decision_payloads(workspace, entry, result["decision_ids"][0]) == {"inputs": gone, "outputs": gone}
    assert decision_payloads(workspace, entry, result["decision_ids"][1]) == {
        "inputs": rows[1],
        "outputs": result["predictions"][1],
    }
    again = erase_data_subject(workspace, "customer-42", reason="gdpr art. 17", principal="local:dpo")
    assert again["keys_destroyed"] == 0
    assert again["ledger_index"] == erased["ledger_index"] + 1


def test_rows_without_subject_are_sealed_under_their_own_keys(workspace: Workspace, sample: SampleModel) -> None:
    """No subject: each row has its own share (its keys derive from it), and retention still erases the inputs."""
    register_model(workspace, name="bc", path=sample.onnx, card_path=sample.card, principal="alice")
    result = predict(workspace, "bc", None, _rows(sample, 2), "local:bob")
    with workspace.engine.connect() as conn:
        shares = conn.execute(select(privacy_rows.c.share).where(privacy_rows.c.share.is_not(None))).scalars().all()
    assert len(set(shares)) == 2
    expired = expire_old_inputs(
        workspace, inputs_retention_days=1, principal="system:retention", now=datetime.now(UTC) + timedelta(days=2)
    )
    assert expired is not None
    assert expired["keys_destroyed"] == 1  # the day's inputs key of rows without subject
    entry = _entry(workspace, result["ledger_index"]).to_json()
    opened = prediction_payloads(workspace, entry)
    assert opened["inputs"] == [{"erased": True, "erasure_index": expired["ledger_index"]}] * 2
    assert opened["outputs"] == result["predictions"]


@pytest.mark.parametrize(
    ("subjects", "problem"),
    [
        (["a"], "one subject per row"),
        ("a,b", "one subject per row"),
        (["a", 3], "subjects[1]"),
        (["a", ""], "subjects[1]"),
        (["a", "x" * 257], "subjects[1]"),
    ],
)
def test_bad_subjects_are_input_errors(subjects: object, problem: str) -> None:
    """Subjects must be strings of bounded length, one per row; the message never echoes a value."""
    with pytest.raises(InvalidInput, match=problem.replace("[", r"\[").replace("]", r"\]")):
        check_subjects(subjects, 2)


def test_payloads_and_entry_commit_together(workspace: Workspace, sample: SampleModel) -> None:
    """A payload row that cannot be written fails the whole append: no entry without its payloads."""
    register_model(workspace, name="bc", path=sample.onnx, card_path=sample.card, principal="alice")
    result = predict(workspace, "bc", None, _rows(sample, 1), "local:bob")
    size = workspace.log.size()
    fresh = "11111111-1111-4111-8111-111111111111"
    decisions = [fresh, result["decision_ids"][0]]  # the second clashes with a stored payload's primary key
    sealed = seal_rows(workspace, decisions, [[1.0], [2.0]], [{"label": 0}, {"label": 1}])
    row = {"name": "bc", "version": 1, "sha256": "0" * 64}
    with pytest.raises(LedgerUnavailable):
        workspace.log.append_many([prediction_record(row, decisions, sealed, principal="x")])
    assert workspace.log.size() == size
    with workspace.engine.connect() as conn:
        assert conn.execute(select(func.count()).where(privacy_rows.c.decision_id == fresh)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(privacy_rows)).scalar_one() == 1
    predict(workspace, "bc", None, _rows(sample, 1), "local:bob")  # the log still appends after the failure
    assert workspace.log.size() == size + 1
