"""Extraction, input drift and output shift on real sealed predictions of the sample model.

Each attack is compared with normal traffic of the same volume drawn from the training data.
"""

from __future__ import annotations

import numpy as np
import pytest

from mlwarden.monitor.alerts_store import list_alerts
from mlwarden.registry.dataset_versions import register_dataset
from mlwarden.registry.governance import approve_and_promote
from mlwarden.registry.models import register_model
from mlwarden.runtime.predict import predict
from mlwarden.samples import SampleModel, breast_cancer_model
from mlwarden.workspace import Workspace
from tests.unit.monitor.conftest import MakeWatcher, drain

ROWS_PER_CALL = 25


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleModel:
    return breast_cancer_model(tmp_path_factory.mktemp("watch") / "art", trees=5)


@pytest.fixture
def served(ws: Workspace, sample: SampleModel) -> Workspace:
    found = register_dataset(ws, name="breast-cancer-train", path=sample.train_csv, principal="alice")
    register_model(ws, name="bc", path=sample.onnx, card_path=sample.card, principal="alice",
                   datasets=[f"breast-cancer-train@sha256:{found['sha256']}"])  # fmt: skip
    approve_and_promote(ws, "bc", 1, approver="reviewer")
    return ws


def training(sample: SampleModel) -> tuple[np.ndarray, np.ndarray]:
    lines = sample.train_csv.read_text().splitlines()[1:]
    table = np.array([[float(v) for v in line.split(",")] for line in lines])
    return table[:, :-1], table[:, -1]


def send(ws: Workspace, principal: str, rows: np.ndarray) -> None:
    for start in range(0, len(rows), ROWS_PER_CALL):
        predict(ws, "bc", 1, rows[start : start + ROWS_PER_CALL].tolist(), principal)


def raised(ws: Workspace) -> set[tuple[str, str | None]]:
    return {(a.alert.rule, a.alert.principal) for a in list_alerts(ws)}


def test_extraction_fires_on_even_coverage_and_not_on_honest_volume(
    served: Workspace, sample: SampleModel, make_watcher: MakeWatcher
) -> None:
    x, _y = training(sample)
    rng = np.random.default_rng(1)
    send(served, "honest", x[rng.integers(0, len(x), 600)])  # same volume, drawn from the training data
    send(served, "thief", rng.uniform(x.min(axis=0), x.max(axis=0), size=(600, x.shape[1])))  # even sweep
    drain(make_watcher())
    found = raised(served)
    assert ("inference.extraction", "thief") in found
    assert ("inference.extraction", "honest") not in found


def test_volume_alone_is_not_extraction(served: Workspace, sample: SampleModel, make_watcher: MakeWatcher) -> None:
    x, _y = training(sample)
    rng = np.random.default_rng(2)
    send(served, "batch-job", x[rng.integers(0, len(x), 1500)])
    drain(make_watcher())
    assert raised(served) == set()


def test_input_drift_fires_on_a_shifted_population_spread_over_callers(
    served: Workspace, sample: SampleModel, make_watcher: MakeWatcher
) -> None:
    x, _y = training(sample)
    rng = np.random.default_rng(3)
    shifted = x[rng.integers(0, len(x), 300)] * 1.6  # a recalibrated sensor: every feature 60% higher
    for i in range(6):
        send(served, f"clinic{i}", shifted[i * 50 : (i + 1) * 50])
    drain(make_watcher())
    rules = {rule for rule, _who in raised(served)}
    assert "inference.input_drift" in rules
    assert "inference.extraction" not in rules  # no single caller has the volume


def test_output_shift_fires_when_answers_leave_the_training_rates(
    served: Workspace, sample: SampleModel, make_watcher: MakeWatcher
) -> None:
    x, y = training(sample)
    rng = np.random.default_rng(4)
    negatives = x[y == 0]
    send(served, "screening", negatives[rng.integers(0, len(negatives), 300)])  # only one class comes in
    drain(make_watcher())
    shifted = [a.alert for a in list_alerts(served) if a.alert.rule == "inference.output_shift"]
    assert len(shifted) == 1
    assert (shifted[0].details or {})["distance"] >= 0.3


def test_normal_traffic_raises_nothing(served: Workspace, sample: SampleModel, make_watcher: MakeWatcher) -> None:
    x, _y = training(sample)
    rng = np.random.default_rng(5)
    for i in range(4):
        send(served, f"user{i}", x[rng.integers(0, len(x), 150)])
    drain(make_watcher())
    assert raised(served) == set()


def test_ongoing_drift_is_one_alert_per_window_even_across_a_restart(
    served: Workspace, sample: SampleModel, make_watcher: MakeWatcher
) -> None:
    x, _y = training(sample)
    rng = np.random.default_rng(6)
    shifted = x[rng.integers(0, len(x), 600)] * 1.6
    for i in range(6):
        send(served, f"clinic{i}", shifted[i * 50 : (i + 1) * 50])
    drain(make_watcher())
    for i in range(6):  # the drift goes on: enough samples to fire again, within the same window
        send(served, f"clinic{i}", shifted[300 + i * 50 : 300 + (i + 1) * 50])
    drain(make_watcher())  # a new watcher: the replayed alert.raised entry keeps it quiet
    drifts = [a for a in list_alerts(served) if a.alert.rule == "inference.input_drift"]
    assert len(drifts) == 1
