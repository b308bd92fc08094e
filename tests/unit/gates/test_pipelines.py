"""A scikit-learn pipeline with a text column: registered, gated on columns read by name, promoted, served."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
import skops.io as sio

from mlwarden.errors import InvalidInput, UnsafeArtifact
from mlwarden.gates.interface import PASS, Candidate, GateContext
from mlwarden.gates.performance import PerformanceGate
from mlwarden.gates.runner import parse_gate_policy
from mlwarden.ledger.entry import Entry
from mlwarden.registry.dataset_versions import register_dataset
from mlwarden.registry.governance import approve, attach_report, evaluation_from_file, promote
from mlwarden.registry.models import register_model
from mlwarden.runtime.predict import predict
from mlwarden.runtime.skops_trust import trust_from_policy
from mlwarden.samples import MixedSample, mixed_pipeline_model
from mlwarden.workspace import Workspace
from tests.unit.gates.conftest import POLICY

ORDINAL = "sklearn.preprocessing._encoders.OrdinalEncoder"


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> MixedSample:
    return mixed_pipeline_model(tmp_path_factory.mktemp("mixed"))


def _gate_on_mixed(ws: Workspace, mixed: MixedSample, tmp_path: Path, extra: str = "") -> None:
    register_dataset(ws, name="mixed-eval", path=mixed.eval_csv.absolute(), principal="alice")
    register_dataset(ws, name="mixed-train", path=mixed.train_csv.absolute(), principal="alice")
    ws.options.paths.policy.write_text(POLICY.replace("toy-eval", "mixed-eval") + extra)


def _ready(ws: Workspace, tmp_path: Path, name: str, version: int) -> None:
    report = tmp_path / "pip-audit.json"
    report.write_text('{"dependencies": [{"name": "numpy", "version": "2.4.6", "vulns": []}]}')
    attach_report(ws, name, version, report, "alice")
    approve(ws, name, version, "bob")


def _gate_run(ws: Workspace) -> dict[str, dict[str, object]]:
    entries = [Entry.parse(text) for _i, text, _h in ws.log.iter_rows()]
    run = next(e for e in reversed(entries) if e.kind == "gate.run")
    return {r["gate"]: r for r in run.body["results"]}


def _bare(mixed: MixedSample, rows: list[dict[str, object]]) -> list[int]:
    model = sio.load(mixed.pipeline, trusted=sio.get_untrusted_types(file=mixed.pipeline))
    return [int(v) for v in model.predict(pd.DataFrame(rows))]


def test_pipeline_with_a_text_column_is_promoted_and_predicts(
    gated: Workspace, mixed: MixedSample, tmp_path: Path
) -> None:
    """The pipeline passes every production gate on its evaluation data and answers rows with strings."""
    _gate_on_mixed(gated, mixed, tmp_path)
    version = register_model(gated, name="mixed", path=mixed.pipeline, card_path=mixed.card, principal="alice").version
    _ready(gated, tmp_path, "mixed", version)
    assert promote(gated, "mixed", version, "production", "bob")["stage"] == "production"
    results = _gate_run(gated)
    assert {g: r["status"] for g, r in results.items()} == dict.fromkeys(results, PASS)
    trusted = results["artifact_safety"]["details"]["skops_trusted_types"]  # type: ignore[index]
    assert "sklearn.compose._column_transformer.ColumnTransformer" in trusted["default"]
    assert trusted["policy"] == []
    rows: list[dict[str, object]] = [
        {"income": 61.5, "age": 40, "city": "paris"},
        {"city": "lille", "age": 33, "income": 44.0},
    ]
    answer = predict(gated, "mixed", None, rows, "local:carol")
    assert [p["label"] for p in answer["predictions"]] == _bare(mixed, rows)


def test_evaluation_columns_are_read_by_name(mixed: MixedSample, tmp_path: Path) -> None:
    """Evaluation data with its columns shuffled (and extra ones) gives exactly the same metrics."""
    frame = pl.read_csv(mixed.eval_csv)
    shuffled = tmp_path / "shuffled.csv"
    frame.select("target", "city", "group", "age", "income").with_columns(note=pl.lit("x")).write_csv(shuffled)
    data = mixed.pipeline.read_bytes()
    import hashlib

    candidate = Candidate("mixed", 1, hashlib.sha256(data).hexdigest(), "skops", data, "mixed.skops")
    config = {"label": "target", "metrics": {"accuracy": {"min": 0.9}, "roc_auc": {"min": 0.9}}}
    measured = []
    for path in (mixed.eval_csv, shuffled):
        ctx = GateContext(candidate, datetime.now(UTC), evaluation=evaluation_from_file(path))
        result = PerformanceGate().run(ctx, config)
        assert result.status == PASS, result.message
        measured.append(result.measured)
    assert measured[0] == measured[1]
    assert measured[0]["accuracy"] > 0.9


def test_evaluation_data_missing_a_feature_names_it(mixed: MixedSample, tmp_path: Path) -> None:
    """A named model's evaluation data without one of its columns is an error naming the column."""
    path = tmp_path / "no-city.csv"
    pl.read_csv(mixed.eval_csv).drop("city").write_csv(path)
    data = mixed.pipeline.read_bytes()
    candidate = Candidate("mixed", 1, "0" * 64, "skops", data, "mixed.skops")
    ctx = GateContext(candidate, datetime.now(UTC), evaluation=evaluation_from_file(path))
    result = PerformanceGate().run(ctx, {"label": "target", "metrics": {"accuracy": {"min": 0.5}}})
    assert result.status == "error"
    assert "lacks feature columns: city" in result.message


def test_untrusted_type_is_refused_then_trusted_by_policy(gated: Workspace, mixed: MixedSample, tmp_path: Path) -> None:
    """An encoder off the allow-list is refused by name; the policy trusts it; the gate evidence says so."""
    _gate_on_mixed(gated, mixed, tmp_path)
    with pytest.raises(UnsafeArtifact) as caught:
        register_model(gated, name="ordinal", path=mixed.ordinal, card_path=mixed.card, principal="alice")
    assert ORDINAL in caught.value.message
    refused = [e for e in (Entry.parse(t) for _i, t, _h in gated.log.iter_rows()) if e.kind == "model.refused"]
    assert refused[-1].body["found"] == [ORDINAL]

    trusting = POLICY.replace("toy-eval", "mixed-eval") + f"runtime:\n  skops_trusted_types: [{ORDINAL}]\n"
    gated.options.paths.policy.write_text(trusting)
    version = register_model(gated, name="ordinal", path=mixed.ordinal, card_path=mixed.card, principal="alice").version
    _ready(gated, tmp_path, "ordinal", version)
    promote(gated, "ordinal", version, "production", "bob")
    trusted = _gate_run(gated)["artifact_safety"]["details"]["skops_trusted_types"]  # type: ignore[index]
    assert trusted["policy"] == [ORDINAL]
    assert ORDINAL not in trusted["default"]
    answer = predict(gated, "ordinal", None, [{"income": 50.0, "age": 30, "city": "nice"}], "local:carol")
    assert answer["predictions"][0]["label"] in (0, 1)


def test_a_type_trusted_no_more_fails_artifact_safety(gated: Workspace, mixed: MixedSample, tmp_path: Path) -> None:
    """A version registered under a policy that trusted its encoder fails artifact_safety once the policy stops."""
    _gate_on_mixed(gated, mixed, tmp_path, f"runtime:\n  skops_trusted_types: [{ORDINAL}]\n")
    version = register_model(gated, name="ordinal", path=mixed.ordinal, card_path=mixed.card, principal="alice").version
    _ready(gated, tmp_path, "ordinal", version)
    gated.options.paths.policy.write_text(POLICY.replace("toy-eval", "mixed-eval"))
    with pytest.raises(Exception, match="artifact_safety"):
        promote(gated, "ordinal", version, "production", "bob")
    safety = _gate_run(gated)["artifact_safety"]
    assert safety["status"] == "fail"
    assert ORDINAL in str(safety["message"])


@pytest.mark.parametrize(
    ("runtime", "needle"),
    [
        ({"skops_trusted_types": ["builtins.eval"]}, "can never be trusted"),
        ({"skops_trusted_types": ["os.system"]}, "can never be trusted"),
        ({"skops_trusted_types": ["subprocess.Popen"]}, "can never be trusted"),
        ({"skops_trusted_types": ["pickle.loads"]}, "can never be trusted"),
        ({"skops_trusted_types": ["numpy.load"]}, "can never be trusted"),
        ({"skops_trusted_types": ["sklearn.__class__"]}, "can never be trusted"),
        ({"skops_trusted_types": ["OrdinalEncoder"]}, "not a dotted module.Name"),
        ({"skops_trusted_types": ["sklearn.x; import os"]}, "not a dotted module.Name"),
        ({"skops_trusted_types": "sklearn.preprocessing._encoders.OrdinalEncoder"}, "must be a list"),
        ({"skops_trusted": [ORDINAL]}, "unknown keys: skops_trusted"),
        (["sklearn.preprocessing._encoders.OrdinalEncoder"], "must be a mapping"),
    ],
)
def test_policy_trust_fails_closed(runtime: object, needle: str) -> None:
    """A malformed or dangerous `runtime` section is an error naming the problem, never ignored."""
    with pytest.raises(InvalidInput, match=needle):
        trust_from_policy(runtime)
    with pytest.raises(InvalidInput, match=needle):
        parse_gate_policy({"runtime": runtime})


def test_numbers_are_not_categories() -> None:
    """An estimator fitted on an encoded integer column takes numbers there, with the encoder's values allowed."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from mlwarden.runtime.skops_model import SkopsModel

    x = np.array([[1], [2], [3], [1], [2], [3]])
    model = make_pipeline(OneHotEncoder(), LogisticRegression()).fit(x, [0, 1, 1, 0, 1, 1])
    loaded = SkopsModel(sio.dumps(model))
    feature = loaded.signature.features[0]
    assert (feature.dtype, feature.allowed) == ("int64", (1, 2, 3))
    assert loaded.signature.layout == "tensor"
    assert loaded.predict(loaded.signature.validate([[2]])).rows()[0]["label"] == 1
    with pytest.raises(InvalidInput, match="not one of the allowed values"):
        loaded.signature.validate([[4]])
