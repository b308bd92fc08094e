"""Models built on purpose for the gates: good, weak, biased; and a workspace with a gate policy."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.registry.dataset_versions import register_dataset
from mlwarden.samples import CARD, fairness_zoo
from mlwarden.workspace import Workspace, init_workspace, open_workspace


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


@pytest.fixture(scope="session")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Zoo:
    folder = tmp_path_factory.mktemp("zoo")
    built = fairness_zoo(folder)
    card = folder / "card.md"
    card.write_text(CARD.format(name="toy", accuracy=0.9).replace("breast-cancer-train", "toy-train"))
    bad_card = folder / "bad-card.md"
    bad_card.write_text("---\nlicense: mit\n---\n# toy\n\n## Intended use\nDemos.\n\n## Limitations\n\n")
    return Zoo(folder, built.eval_csv, built.train_csv, built.good, built.weak, built.biased, card, bad_card)


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
