"""Extraction against an in-process model: the curve, the stops, the severity rule."""

from __future__ import annotations

import numpy as np
import pytest

from mlwarden.redteam.alert_check import AlertCheck
from mlwarden.redteam.estimator_oracle import EstimatorOracle
from mlwarden.redteam.extraction import ExtractionOptions, extraction_severity, run_extraction, synthetic_queries
from mlwarden.redteam.feature_space import FeatureSpace
from mlwarden.redteam.findings import FindingSeverity
from mlwarden.redteam.oracle import QueryBudget, StopReason
from tests.unit.redteam.attack_models import forest, toy

H, M, L = FindingSeverity.HIGH, FindingSeverity.MEDIUM, FindingSeverity.LOW


@pytest.mark.parametrize(
    ("fidelity", "alert", "severity"),
    [
        (0.97, AlertCheck.NOT_FIRED, H), (0.97, AlertCheck.NOT_CHECKED, M), (0.97, AlertCheck.FIRED, L),
        (0.90, AlertCheck.NOT_FIRED, M), (0.90, AlertCheck.NOT_CHECKED, M), (0.90, AlertCheck.FIRED, L),
        (0.80, AlertCheck.NOT_FIRED, None), (0.95, AlertCheck.NOT_FIRED, H), (0.85, AlertCheck.FIRED, L),
    ],
)  # fmt: skip
def test_severity_rule(fidelity: float, alert: AlertCheck, severity: FindingSeverity | None) -> None:
    """High fidelity with no alert is high; detection or an unverifiable alert lowers it; a poor copy is no finding."""
    assert extraction_severity(fidelity, alert, ExtractionOptions()) is severity


def test_the_surrogate_approaches_the_model_as_queries_grow() -> None:
    """Against a forest on a linear rule: fidelity at 1,000 queries is high and above the 20-query point."""
    train, held = toy(600, 1), toy(400, 2)
    oracle = EstimatorOracle(forest(train), QueryBudget.of(5000, 60))
    options = ExtractionOptions(queries=1000, checkpoints=(20, 100, 1000), step=20)
    result = run_extraction(oracle, seeds=held.x[:50], holdout=held.x[50:], space=FeatureSpace.of_rows(train.x),
                            options=options)  # fmt: skip
    assert [p.queries for p in result.curve] == [20, 100, 1000]
    assert result.fidelity >= 0.9
    assert result.curve[-1].fidelity > result.curve[0].fidelity
    assert result.queries == 1000
    assert oracle.budget.spent == 1000 + 350  # the holdout's labels, then the attack
    assert result.stopped is None
    assert result.alert is AlertCheck.NOT_CHECKED  # no watch given


def test_a_spent_budget_ends_the_attack_with_a_last_point_on_what_was_answered() -> None:
    """Budget for the holdout plus 130 rows: the curve ends at 120 (whole steps of 20 after 100), stopped by budget."""
    train, held = toy(300, 3), toy(200, 4)
    oracle = EstimatorOracle(forest(train), QueryBudget.of(150 + 130, 60))
    options = ExtractionOptions(queries=1000, checkpoints=(100, 500), step=20)
    result = run_extraction(oracle, seeds=held.x[:50], holdout=held.x[50:], space=FeatureSpace.of_rows(train.x),
                            options=options)  # fmt: skip
    assert result.stopped is StopReason.BUDGET
    assert [p.queries for p in result.curve] == [100, 120]
    assert result.metrics()["stopped_by"] == "budget"


def test_synthetic_queries_stay_in_the_box_and_near_the_seeds() -> None:
    """Every query lies inside the feature box; with no noise they are exactly seed rows."""
    data = toy(100, 5)
    space = FeatureSpace.of_rows(data.x)
    rng = np.random.default_rng(0)
    rows = synthetic_queries(data.x[:10], space, 500, 0.5, rng)
    assert np.all(rows >= space.lows) and np.all(rows <= space.highs)  # noqa: PT018
    exact = synthetic_queries(data.x[:10], space, 20, 0.0, rng)
    assert all(any(np.array_equal(r, s) for s in data.x[:10]) for r in exact)


def test_no_query_budget_left_after_the_holdout_means_no_copy_and_no_finding() -> None:
    """queries=0: the holdout is labelled, nothing else is asked, the curve is empty and there is no finding."""
    train, held = toy(200, 6), toy(100, 7)
    oracle = EstimatorOracle(forest(train), QueryBudget.of(1000, 60))
    result = run_extraction(oracle, seeds=held.x[:50], holdout=held.x[50:], space=FeatureSpace.of_rows(train.x),
                            options=ExtractionOptions(queries=0))  # fmt: skip
    assert result.curve == ()
    assert oracle.budget.spent == 50
    assert result.finding() is None
