"""Models built on purpose for the gates: good, weak, biased; and a workspace with a gate policy."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.registry.dataset_versions import register_dataset
from mlwarden.samples import CARD
from mlwarden.workspace import Workspace, init_workspace, open_workspace

FEATURES = ["f0", "f1", "f2", "group"]


@dataclass(frozen=True)
class Zoo:
    folder: Path
    eval_csv: Path
    train_csv: Path
    good: Path
    weak: Path
    biased: Path
    card: Path
    bad_card: Path


def _data(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    group = rng.integers(0, 2, n).astype(np.float32)
    target = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    return pl.DataFrame({"f0": x[:, 0], "f1": x[:, 1], "f2": x[:, 2], "group": group, "target": target})


def _onnx(model: LogisticRegression, x: np.ndarray, path: Path) -> Path:
    path.write_bytes(to_onnx(model, x[:1], options={id(model): {"zipmap": False}}, target_opset=17).SerializeToString())
    return path


@pytest.fixture(scope="session")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Zoo:
    folder = tmp_path_factory.mktemp("zoo")
    train, evaluation = _data(2000, 1), _data(800, 2)
    train.write_csv(folder / "train.csv")
    evaluation.write_csv(folder / "eval.csv")
    x = train.select(FEATURES).to_numpy().astype(np.float32)
    y = train.get_column("target").to_numpy()
    good = LogisticRegression().fit(x, y)
    weak = LogisticRegression().fit(x[:, [2, 3]], y)  # only noise and the group: barely better than chance
    weak_full = LogisticRegression()
    weak_full.coef_ = np.hstack([np.zeros((1, 2)), weak.coef_])
    weak_full.intercept_, weak_full.classes_, weak_full.n_features_in_ = weak.intercept_, weak.classes_, 4
    biased_y = np.where(x[:, 3] == 1, 1, y)  # group 1 always gets the positive label
    biased = LogisticRegression(C=100).fit(x, biased_y)
    card = folder / "card.md"
    card.write_text(CARD.format(name="toy", accuracy=0.9).replace("breast-cancer-train", "toy-train"))
    bad_card = folder / "bad-card.md"
    bad_card.write_text("---\nlicense: mit\n---\n# toy\n\n## Intended use\nDemos.\n\n## Limitations\n\n")
    return Zoo(
        folder,
        folder / "eval.csv",
        folder / "train.csv",
        _onnx(good, x, folder / "good.onnx"),
        _onnx(weak_full, x, folder / "weak.onnx"),
        _onnx(biased, x, folder / "biased.onnx"),
        card,
        bad_card,
    )


POLICY = """
stages:
  staging:
    gates: [model_card, artifact_safety]
  production:
    gates: [model_card, artifact_safety, performance, fairness, vulnerabilities, approvals]
gates:
  performance:
    dataset: toy-eval
    label: target
    metrics: {accuracy: {min: 0.85}, roc_auc: {min: 0.9}}
    max_regression: {accuracy: 0.02}
  fairness:
    dataset: toy-eval
    label: target
    sensitive: [group]
    max_demographic_parity_difference: 0.15
    max_equalized_odds_difference: 0.2
  vulnerabilities: {fail_on: high}
  approvals: {required: 1}
waivers:
  - {id: GHSA-waived-0001, reason: not reachable from the server, expires: 2099-01-01, approver: sec@example.com}
  - {id: GHSA-expired-0002, reason: was accepted last year, expires: 2020-01-01, approver: security@example.com}
"""


@pytest.fixture
def gated(tmp_path: Path, zoo: Zoo) -> Iterator[Workspace]:
    options = WorkspaceOptions.from_settings(Settings(database_url=None), tmp_path / "ws")
    init_workspace(options)
    options.paths.policy.write_text(POLICY)
    ws = open_workspace(options)
    register_dataset(ws, name="toy-train", path=zoo.train_csv, principal="alice")
    register_dataset(ws, name="toy-eval", path=zoo.eval_csv.absolute(), principal="alice")
    try:
        yield ws
    finally:
        ws.close()
