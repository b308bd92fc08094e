"""Extraction, input drift and output shift on real sealed predictions of the sample model.

Each attack is compared with normal traffic of the same volume drawn from the training data.
"""

from __future__ import annotations

import numpy as np
import pytest

from mlwarden.monitor.alert import Alert
from mlwarden.monitor.alerts_store import list_alerts
from mlwarden.monitor.references import ReferenceBook
from mlwarden.redteam.extraction import ExtractionOptions, synthetic_queries
from mlwarden.redteam.feature_space import FeatureSpace
from mlwarden.registry.artifacts import ArtifactStore
from mlwarden.registry.dataset_versions import get_dataset
from mlwarden.runtime.predict import predict
from mlwarden.samples import SampleModel, breast_cancer_model
from mlwarden.workspace import Workspace
from tests.support.served import bc_in_production
from tests.unit.monitor.conftest import MakeWatcher, drain

ROWS_PER_CALL = 25
REDTEAM_QUERIES = 600
REDTEAM_HOLDOUT = 200
"""The red team's extraction at its default budget: 2,000 x 40% = 800 rows, a quarter of them the judge's holdout."""


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleModel:
    return breast_cancer_model(tmp_path_factory.mktemp("watch") / "art", trees=5)


@pytest.fixture
def served(ws: Workspace, sample: SampleModel) -> Workspace:
    bc_in_production(ws, sample)
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


def held_out(sample: SampleModel, label: int | None = None) -> np.ndarray:
    """Rows the model never saw (only those of class ``label`` when given)."""
    lines = sample.eval_csv.read_text().splitlines()[1:]
    table = np.array([[float(v) for v in line.split(",")] for line in lines])
    return table[:, :-1] if label is None else table[table[:, -1] == label, :-1]


def send_calls(ws: Workspace, principal: str, calls: list[np.ndarray]) -> None:
    for rows in calls:
        predict(ws, "bc", 1, rows.tolist(), principal)


def redteam_calls(seeds: np.ndarray, judged: np.ndarray, space: FeatureSpace, seed: int) -> list[np.ndarray]:
    """What the extraction suite sends: its holdout in one judge request, then 100-row steps of synthetic queries."""
    options = ExtractionOptions(seed=seed)
    rng = np.random.default_rng(options.seed)
    steps = [synthetic_queries(seeds, space, options.step, options.noise, rng)
             for _ in range(REDTEAM_QUERIES // options.step)]  # fmt: skip
    return [judged[:REDTEAM_HOLDOUT], *steps]  # the holdout fits one judge request (250 rows)


def extraction_alerts(ws: Workspace) -> dict[str | None, Alert]:
    return {a.alert.principal: a.alert for a in list_alerts(ws) if a.alert.rule == "inference.extraction"}


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


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_red_teams_extraction_at_its_default_budget_raises_extraction(
    served: Workspace, sample: SampleModel, make_watcher: MakeWatcher, seed: int
) -> None:
    """Seed rows plus 0.25-std noise keep PSI and range quiet but leave the training's correlations: off_shape fires."""
    x, _y = training(sample)
    half = len(x) // 2  # --home: the attacker's seeds are half the training rows, the other half judges the copy
    send_calls(served, "thief", redteam_calls(x[:half], x[half:], FeatureSpace.of_rows(x), seed))
    send_calls(served, "thief2", redteam_calls(held_out(sample)[:70], x, FeatureSpace.of_rows(x), seed))
    drain(make_watcher())
    found = extraction_alerts(served)
    assert set(found) == {"thief", "thief2"}
    for alert in found.values():
        details = alert.details or {}
        assert details["signals"] == ["off_shape"]  # the profile's own signals stay quiet: the old blind spot
        assert details["off_shape"] >= 0.3
        assert details["psi_mean"] < 0.5
        assert "off_shape" in alert.summary


def test_real_rows_put_in_front_of_every_request_do_not_hide_the_extraction(
    served: Workspace, sample: SampleModel, make_watcher: MakeWatcher
) -> None:
    """The sampler reads a random pick of an entry's rows, not the first 16: a cover of 16 real rows ahead of
    each step of synthetic queries (what a caller who knew the old sampler would send) is still caught."""
    x, _y = training(sample)
    half = len(x) // 2
    rng = np.random.default_rng(7)
    calls = redteam_calls(x[:half], x[half:], FeatureSpace.of_rows(x), 0)
    covered = [calls[0], *(np.vstack([x[rng.integers(0, half, 16)], step]) for step in calls[1:])]
    send_calls(served, "thief", covered)
    drain(make_watcher())
    assert "off_shape" in (extraction_alerts(served)["thief"].details or {})["signals"]


def test_with_off_shape_turned_off_the_red_teams_extraction_goes_unseen(
    served: Workspace, sample: SampleModel, make_watcher: MakeWatcher
) -> None:
    """The blind spot this signal closes: the same attack with ``off_shape: 0`` raises nothing."""
    x, _y = training(sample)
    half = len(x) // 2
    send_calls(served, "thief", redteam_calls(x[:half], x[half:], FeatureSpace.of_rows(x), 0))
    drain(make_watcher("alerts:\n  inference.extraction: {off_shape: 0}\n"))
    assert extraction_alerts(served) == {}


def test_honest_traffic_at_the_red_teams_volume_is_not_extraction(
    served: Workspace, sample: SampleModel, make_watcher: MakeWatcher
) -> None:
    """Same volume and call sizes, drawn from the training rows (three RNG seeds) or rows the model never saw."""
    x, _y = training(sample)
    unseen = held_out(sample)
    volume = REDTEAM_HOLDOUT + REDTEAM_QUERIES
    for seed in range(3):
        rows = x[np.random.default_rng(10 + seed).integers(0, len(x), volume)]
        send_calls(served, f"clinic{seed}", [rows[:200], *np.split(rows[200:], 6)])
    rows = unseen[np.random.default_rng(13).integers(0, len(unseen), volume)]
    send_calls(served, "new-patients", [rows[:200], *np.split(rows[200:], 6)])
    rows = x[np.random.default_rng(14).integers(0, len(x), volume)]
    send(served, "small-calls", rows)  # 25 rows a call: every row of each call sampled, 32 calls
    drain(make_watcher())
    assert extraction_alerts(served) == {}
    assert raised(served) == set()


def test_one_class_of_unseen_rows_at_volume_stays_on_the_training_shape(
    served: Workspace, sample: SampleModel, make_watcher: MakeWatcher
) -> None:
    """An oncology ward's malignant cases only: real rows, so not off the shape (PSI, a separate signal, is muted)."""
    malignant = held_out(sample, label=0)  # the hardest honest case measured: 5-12% off, limit 30%
    rows = malignant[np.random.default_rng(15).integers(0, len(malignant), REDTEAM_HOLDOUT + REDTEAM_QUERIES)]
    send_calls(served, "oncology", [rows[:200], *np.split(rows[200:], 6)])
    drain(make_watcher("alerts:\n  inference.extraction: {distance: 100}\n"))  # one class alone moves PSI past 0.5
    assert extraction_alerts(served) == {}


def test_a_training_file_changed_on_disk_leaves_the_shape_unknown_and_the_profile_in_use(
    served: Workspace, sample: SampleModel, make_watcher: MakeWatcher
) -> None:
    """Tampered training blob: no shape is fitted from it (off_shape unknown), the profile's signals still work."""
    assert (ReferenceBook.of_workspace(served).get("bc", 1) or pytest.fail("no reference")).shape is not None
    blob = ArtifactStore(served.options.paths.artifacts).path_for(get_dataset(served, "breast-cancer-train")["sha256"])
    blob.write_bytes(blob.read_bytes().replace(b"\n", b"\n9,", 1))
    reference = ReferenceBook.of_workspace(served).get("bc", 1)
    assert reference is not None
    assert reference.shape is None
    x, _y = training(sample)
    send(served, "thief", np.random.default_rng(1).uniform(x.min(axis=0), x.max(axis=0), size=(600, x.shape[1])))
    drain(make_watcher())
    alert = extraction_alerts(served)["thief"]
    assert (alert.details or {})["signals"] == ["distance"]  # the even sweep, seen through the profile alone
    assert (alert.details or {})["off_shape"] is None
    assert "off its feature correlations" not in alert.summary


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
