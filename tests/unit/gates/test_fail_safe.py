"""Gates fail safe: NaN, infinite or missing figures, a crashing gate and a changed artifact all block promotion."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import fairlearn.metrics
import polars as pl
import pytest

from mlwarden.errors import GateFailed
from mlwarden.gates.interface import ERROR, PASS, GateResult
from mlwarden.gates.runner import fail_safe
from mlwarden.ledger.entry import Entry
from mlwarden.registry.artifacts import ArtifactStore
from mlwarden.registry.dataset_versions import register_dataset
from mlwarden.registry.governance import approve, promote
from mlwarden.registry.models import get_version, register_model
from mlwarden.workspace import Workspace
from tests.unit.cli.conftest import Cli
from tests.unit.gates.conftest import POLICY, Zoo


def _policy(ws: Workspace, gates: str, **replacements: str) -> None:
    text = POLICY.replace(
        "gates: [model_card, artifact_safety, performance, fairness, vulnerabilities, approvals]", f"gates: [{gates}]"
    )
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    ws.options.paths.policy.write_text(text)


def _one_class_csv(zoo: Zoo, folder: Path) -> Path:
    path = folder / "one-class.csv"
    pl.read_csv(zoo.eval_csv).filter(pl.col("target") == 1).write_csv(path)
    return path.absolute()


def _broken_csv(zoo: Zoo, folder: Path) -> Path:
    """Evaluation data whose numeric feature column holds text: the model cannot be scored on it."""
    path = folder / "broken.csv"
    frame = pl.read_csv(zoo.eval_csv)
    frame.with_columns(pl.col("f1").cast(pl.Utf8).str.replace(r"^", "x")).write_csv(path)
    return path.absolute()


def _refused(ws: Workspace, version: int) -> dict[str, GateResult]:
    with pytest.raises(GateFailed) as caught:
        promote(ws, "toy", version, "production", "bob")
    assert get_version(ws, "toy", version)["stage"] == "candidate"
    return {r.gate: r for r in caught.value.results}


def _last(ws: Workspace, kind: str) -> Entry:
    entries = [Entry.parse(text) for _i, text, _h in ws.log.iter_rows()]
    return next(e for e in reversed(entries) if e.kind == kind)


def test_roc_auc_on_one_class_data_is_an_error_and_blocks_promotion(gated: Workspace, zoo: Zoo, tmp_path: Path) -> None:
    """ROC AUC is undefined with one class present: performance is `error` naming roc_auc, and nothing is promoted."""
    register_dataset(gated, name="one-class", path=_one_class_csv(zoo, tmp_path), principal="alice")
    _policy(
        gated,
        "performance",
        **{"dataset: toy-eval\n    label: target\n    metrics": "dataset: one-class\n    label: target\n    metrics"},
    )
    v = register_model(gated, name="toy", path=zoo.good, card_path=zoo.card, principal="alice").version
    performance = _refused(gated, v)["performance"]
    assert performance.status == ERROR
    assert "roc_auc" in performance.message
    assert "nan" in performance.message
    run = _last(gated, "gate.run")  # the refusal is recorded, as JSON the ledger accepts
    assert run.body["passed"] is False
    assert _last(gated, "model.promotion_refused").body["failed"] == ["performance"]


def test_gate_check_with_one_class_data_exits_1(cli: Cli, zoo: Zoo, tmp_path: Path) -> None:
    """In CI (no ledger involved) one-class evaluation data is an ERROR row and exit 1, not a pass."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "stages: {production: {gates: [performance]}}\n"
        "gates: {performance: {label: target, metrics: {roc_auc: {min: 0.5}, accuracy: {min: 0.0}}}}\n"
    )
    result = cli(
        "gate", "check", str(zoo.good), "--policy", str(policy), "--eval", str(_one_class_csv(zoo, tmp_path)),
        "--json", use_home=False,
    )  # fmt: skip
    assert result.code == 1, result.err
    (performance,) = json.loads(result.out)["results"]
    assert performance["status"] == "error"
    assert "metric roc_auc is nan" in performance["message"]


@pytest.mark.parametrize(
    ("gate", "old", "new", "needle"),
    [
        ("fairness", "max_demographic_parity_difference: 0.15", "max_demographic_parity_difference: .nan",
         "max_demographic_parity_difference is nan"),
        ("fairness", "max_equalized_odds_difference: 0.2", "max_equalized_odds_difference: .inf",
         "max_equalized_odds_difference is inf"),
        ("performance", "accuracy: {min: 0.85}", "accuracy: {min: .nan}", "accuracy.min is nan"),
        ("performance", "max_regression: {accuracy: 0.02}", "max_regression: {accuracy: .nan}",
         "max_regression.accuracy is nan"),
    ],
)  # fmt: skip
def test_nan_or_infinite_threshold_is_an_error(
    gated: Workspace, zoo: Zoo, gate: str, old: str, new: str, needle: str
) -> None:
    """A NaN or infinite threshold in the policy (every comparison with NaN is false) is `error`, never a pass."""
    _policy(gated, gate, **{old: new})
    v = register_model(gated, name="toy", path=zoo.good, card_path=zoo.card, principal="alice").version
    result = _refused(gated, v)[gate]
    assert result.status == ERROR
    assert needle in result.message


@pytest.mark.parametrize("figure", ["demographic_parity_difference", "equalized_odds_difference"])
def test_nan_fairness_figure_is_an_error(
    gated: Workspace, zoo: Zoo, monkeypatch: pytest.MonkeyPatch, figure: str
) -> None:
    """fairlearn answering NaN for a difference makes fairness `error` naming the figure, and promotion is refused."""
    monkeypatch.setattr(fairlearn.metrics, figure, lambda *_a, **_k: float("nan"))
    _policy(gated, "fairness")
    v = register_model(gated, name="toy", path=zoo.good, card_path=zoo.card, principal="alice").version
    fairness = _refused(gated, v)["fairness"]
    assert fairness.status == ERROR
    assert f"{figure} is nan" in fairness.message


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -math.inf, None])
def test_runner_turns_an_unfit_figure_into_an_error(bad: float | None) -> None:
    """Whatever a gate says, a measured figure that is NaN, infinite or missing makes its result `error`."""
    claimed = GateResult("performance", PASS, "looks fine", {"accuracy": 0.9, "roc_auc": bad}, details={"x": bad})
    result = fail_safe(claimed)
    assert result.status == ERROR
    assert "roc_auc" in result.message
    json.dumps(result.to_json(), allow_nan=False)  # what the ledger and the reports receive
    assert fail_safe(GateResult("performance", PASS, "ok", {"accuracy": 0.9})).status == PASS


def test_unscorable_evaluation_data_blocks_promotion(gated: Workspace, zoo: Zoo, tmp_path: Path) -> None:
    """Evaluation data the model cannot be scored on makes each gate `error` naming the column; nothing is promoted."""
    register_dataset(gated, name="broken", path=_broken_csv(zoo, tmp_path), principal="alice")
    _policy(gated, "model_card, performance, fairness", **{"dataset: toy-eval": "dataset: broken"})
    v = register_model(gated, name="toy", path=zoo.good, card_path=zoo.card, principal="alice").version
    results = _refused(gated, v)
    assert results["model_card"].status == PASS
    for gate in ("performance", "fairness"):
        assert results[gate].status == ERROR
        assert "evaluation columns f1 hold text" in results[gate].message, results[gate].message
    assert sorted(_last(gated, "model.promotion_refused").body["failed"]) == ["fairness", "performance"]


def test_unscorable_evaluation_data_makes_gate_check_exit_1(cli: Cli, zoo: Zoo, tmp_path: Path) -> None:
    """`gate check` with evaluation data the performance gate cannot score prints ERROR and exits 1."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("stages: {production: {gates: [performance]}}\ngates: {performance: {label: target}}\n")
    args = ["gate", "check", str(zoo.good), "--policy", str(policy), "--eval", str(_broken_csv(zoo, tmp_path))]
    result = cli(*args, use_home=False)
    assert result.code == 1, result.err
    assert "ERROR" in result.out
    assert "f1 hold text" in result.out


def test_changed_artifact_fails_artifact_safety(gated: Workspace, zoo: Zoo) -> None:
    """Bytes replaced in the artifact store after registration fail artifact_safety, naming both hashes."""
    _policy(gated, "artifact_safety, approvals")
    registered = register_model(gated, name="toy", path=zoo.good, card_path=zoo.card, principal="alice")
    approve(gated, "toy", registered.version, "bob")
    blob = ArtifactStore(gated.options.paths.artifacts).path_for(registered.sha256)
    os.chmod(blob, 0o600)
    blob.write_bytes(zoo.weak.read_bytes())  # another valid, allowed model: only the hash tells
    safety = _refused(gated, registered.version)["artifact_safety"]
    assert safety.status == "fail"
    assert f"not the registered {registered.sha256}" in safety.message
