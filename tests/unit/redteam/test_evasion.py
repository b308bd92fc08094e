"""Evasion with ART against an in-process model: against a linear model the optimum is known, so it can be checked."""

from __future__ import annotations

import numpy as np
import pytest

from mlwarden.redteam.estimator_oracle import EstimatorOracle
from mlwarden.redteam.evasion import AttackOutcome, EvasionOptions, EvasionResult, evasion_severity, run_evasion
from mlwarden.redteam.feature_space import FeatureSpace
from mlwarden.redteam.findings import CheckStatus, FindingSeverity
from mlwarden.redteam.oracle import QueryBudget
from tests.unit.redteam.attack_models import linear, toy


def _outcome(attempted: int, perturbations: tuple[float, ...]) -> AttackOutcome:
    empty = np.zeros((0, 2))
    return AttackOutcome("hopskipjump", attempted, empty, empty, np.zeros(0), np.zeros(0), perturbations, 100)


@pytest.mark.parametrize(
    ("attempted", "sizes", "severity"),
    [
        (4, (0.005, 0.01, 0.015), FindingSeverity.HIGH),
        (4, (0.01, 0.03, 0.04), FindingSeverity.MEDIUM),  # median 3 %: above the 2 % of high
        (4, (0.01,), FindingSeverity.MEDIUM),  # 25 % flipped: not enough for high
        (4, (0.06, 0.08), FindingSeverity.MEDIUM),
        (4, (0.2, 0.3), FindingSeverity.LOW),
        (4, (), None),
    ],
)
def test_severity_rule(attempted: int, sizes: tuple[float, ...], severity: FindingSeverity | None) -> None:
    """Many rows flipped by small changes is high; fewer or larger flips less; no flip is no finding."""
    assert evasion_severity(_outcome(attempted, sizes), EvasionOptions()) is severity


def _optimum(model: object, space: FeatureSpace, rows: np.ndarray) -> np.ndarray:
    """The exact smallest relative-L2 change that reaches a linear model's boundary, row by row (unit box)."""
    w = model.coef_[0] * space.span  # type: ignore[attr-defined]
    b = model.intercept_[0] + model.coef_[0] @ space.lows  # type: ignore[attr-defined]
    z = (rows - space.lows) / space.span
    return np.asarray(np.abs(z @ w + b) / np.linalg.norm(w) / np.sqrt(len(w)))


def test_both_attacks_flip_rows_with_close_to_the_smallest_possible_change() -> None:
    """Every verified success really flips the model; none beats the exact optimum, and the median is within 2x."""
    train, held = toy(500, 1), toy(200, 2)
    model = linear(train)
    space = FeatureSpace.of_rows(np.concatenate([train.x, held.x]))
    oracle = EstimatorOracle(model, QueryBudget.of(100_000, 120))
    result = run_evasion(oracle, rows=held.x, space=space, options=EvasionOptions(samples=4))
    for outcome in result.outcomes:
        assert outcome.succeeded >= 3, outcome.attack
        assert (model.predict(outcome.adversarials) != model.predict(outcome.originals)).all()
        best = _optimum(model, space, outcome.originals)
        found = np.array(outcome.perturbations)
        assert np.all(found >= best * 0.999), (found, best)
        assert np.median(found / best) < 2.0, (found, best)
    assert sum(p["count"] for p in result.histogram()) == sum(o.succeeded for o in result.outcomes)


def test_a_small_budget_is_shared_and_never_exceeded() -> None:
    """600 rows for two attacks: each gets its share, both stop on the budget, the total stays within it."""
    train, held = toy(300, 3), toy(100, 4)
    oracle = EstimatorOracle(linear(train), QueryBudget.of(600, 60))
    result = run_evasion(oracle, rows=held.x, space=FeatureSpace.of_rows(train.x), options=EvasionOptions(samples=5))
    assert oracle.budget.spent <= 600
    assert [o.attack for o in result.outcomes] == ["hopskipjump", "boundary"]
    assert all(o.queries > 0 for o in result.outcomes)  # the second attack was not starved by the first
    assert any(o.stopped is not None for o in result.outcomes)


def test_an_attack_that_attacked_no_row_is_not_checked_never_passed() -> None:
    """Out of budget before the first row: the probe is not checked (a pass would claim a defence held)."""
    starved = EvasionResult((_outcome(0, ()),), 1.0)
    flipped = EvasionResult((_outcome(4, (0.01, 0.02, 0.03)),), 1.0)
    held = EvasionResult((_outcome(4, ()),), 1.0)
    assert [c.status for c in starved.checks()] == [CheckStatus.NOT_CHECKED]
    assert [c.status for c in flipped.checks()] == [CheckStatus.FAILED]
    assert [c.status for c in held.checks()] == [CheckStatus.PASSED]
    assert starved.findings() == [] and held.findings() == []  # noqa: PT018
    assert [f.id for f in flipped.findings()] == ["evasion.hopskipjump"]
