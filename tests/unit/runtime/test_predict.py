"""Local predictions through the runtime: same answers as the bare model, recorded first."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import polars as pl
import pytest

from mlwarden.errors import ValidationError
from mlwarden.ledger.entry import Entry
from mlwarden.registry.models import register_model
from mlwarden.runtime.predict import predict
from mlwarden.samples import SampleModel, breast_cancer_model
from mlwarden.subjects.decisions import prediction_payloads
from mlwarden.workspace import Workspace


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleModel:
    return breast_cancer_model(tmp_path_factory.mktemp("predict") / "art", trees=10)


def _eval_rows(sample: SampleModel, n: int) -> list[list[float]]:
    frame = pl.read_csv(sample.eval_csv).drop("target").head(n)
    return [list(map(float, row)) for row in frame.iter_rows()]


@pytest.mark.parametrize("fmt", ["onnx", "skops"])
def test_predictions_match_the_bare_model_and_are_recorded(workspace: Workspace, sample: SampleModel, fmt: str) -> None:
    """Labels equal a bare onnxruntime session's; the ledger holds inputs, outputs and decision ids."""
    path = sample.onnx if fmt == "onnx" else sample.skops
    register_model(workspace, name="bc", path=path, card_path=sample.card, principal="alice")
    rows = _eval_rows(sample, 5)
    result = predict(workspace, "bc", None, rows, "local:bob")
    bare = ort.InferenceSession(sample.onnx.read_bytes(), providers=["CPUExecutionProvider"])
    labels = bare.run(None, {bare.get_inputs()[0].name: np.asarray(rows, dtype=np.float32)})[0]
    assert [p["label"] for p in result["predictions"]] == labels.tolist()
    entry = Entry.parse(workspace.log.entry(result["ledger_index"]).text)
    assert entry.kind == "prediction"
    assert entry.principal == "local:bob"
    assert entry.body["decision_ids"] == result["decision_ids"]
    assert "inputs" not in entry.body
    assert entry.body["v"] == 2
    opened = prediction_payloads(workspace, entry.to_json())
    assert opened == {"inputs": rows, "outputs": result["predictions"]}
    assert len(set(result["decision_ids"])) == 5


def test_invalid_input_records_nothing(workspace: Workspace, sample: SampleModel) -> None:
    """A rejected request produces no prediction entry."""
    register_model(
        workspace,
        name="bc",
        path=sample.onnx,
        card_path=sample.card,
        principal="alice",
        signature_path=sample.signature,
    )
    before = workspace.log.size()
    row = dict(
        zip(
            [f["name"] for f in __import__("json").loads(sample.signature.read_text())["features"]],
            _eval_rows(sample, 1)[0],
            strict=True,
        )
    )
    row["mean_radius"] = -5.0
    with pytest.raises(ValidationError, match="mean_radius"):
        predict(workspace, "bc", 1, [row], "local:bob")
    assert workspace.log.size() == before
