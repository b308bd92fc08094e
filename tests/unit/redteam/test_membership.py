"""Membership inference with ART against in-process models whose leak is known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from mlwarden.errors import InvalidInput
from mlwarden.redteam.estimator_oracle import EstimatorOracle
from mlwarden.redteam.findings import FindingSeverity
from mlwarden.redteam.membership import MembershipOptions, advantage, membership_severity, run_membership
from mlwarden.redteam.oracle import QueryBudget, StopReason
from tests.unit.redteam.attack_models import toy


def _key(row: np.ndarray) -> bytes:
    return np.asarray(row, np.float32).tobytes()  # the oracle hands rows over as float32


class Memoriser:
    """Certain about the rows it was trained on (their given label), a coin toss elsewhere: the worst leak."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.seen: dict[bytes, int] = {_key(r): int(v) for r, v in zip(x, y, strict=True)}

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        out = np.full((len(rows), 2), 0.5)
        for i, row in enumerate(rows):
            label = self.seen.get(_key(row))
            if label is not None:
                out[i] = np.eye(2)[label]
        return out

    def predict(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(np.argmax(self.predict_proba(rows), axis=1))


class Constant:
    """The same answer for every row: nothing to learn membership from."""

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        return np.tile([0.3, 0.7], (len(rows), 1))

    def predict(self, rows: np.ndarray) -> np.ndarray:
        return np.ones(len(rows), dtype=np.int64)


def test_advantage_is_the_best_tpr_minus_fpr() -> None:
    """Perfectly separated scores: 1; identical scores: 0; one member ranked among non-members: 0.5."""
    labels = np.array([1, 1, 0, 0])
    assert advantage(labels, np.array([0.9, 0.8, 0.2, 0.1])) == 1.0
    assert advantage(labels, np.array([0.5, 0.5, 0.5, 0.5])) == 0.0
    assert advantage(labels, np.array([0.9, 0.1, 0.5, 0.2])) == 0.5


@pytest.mark.parametrize(
    ("auc", "severity"),
    [(0.9, FindingSeverity.HIGH), (0.75, FindingSeverity.HIGH), (0.7, FindingSeverity.MEDIUM),
     (0.58, FindingSeverity.LOW), (0.52, None), (None, None)],
)  # fmt: skip
def test_severity_rule(auc: float | None, severity: FindingSeverity | None) -> None:
    """The AUC sets the severity; near chance (or no measurement) is no finding."""
    assert membership_severity(auc, MembershipOptions()) is severity


def test_a_memorising_model_is_caught_and_a_constant_one_is_not() -> None:
    """AUC and advantage near 1 against the memoriser, 0.5 and 0 against the constant model."""
    members, others = toy(120, 1), toy(120, 2)
    leaky = run_membership(EstimatorOracle(Memoriser(members.x, members.y), QueryBudget.of(1000, 60)),
                           members=(members.x, members.y), nonmembers=(others.x, others.y))  # fmt: skip
    assert leaky.auc is not None and leaky.auc > 0.95  # noqa: PT018
    assert leaky.advantage is not None and leaky.advantage > 0.9  # noqa: PT018
    assert leaky.queries == 240
    assert leaky.probabilities
    blind = run_membership(EstimatorOracle(Constant(), QueryBudget.of(1000, 60)),
                           members=(members.x, members.y), nonmembers=(others.x, others.y))  # fmt: skip
    assert blind.auc is not None and abs(blind.auc - 0.5) < 0.1  # noqa: PT018
    assert blind.finding() is None


def test_a_budget_too_small_for_the_rows_measures_nothing() -> None:
    """The oracle cannot answer both sides: no AUC, stopped by the budget, no finding."""
    members, others = toy(50, 3), toy(50, 4)
    result = run_membership(EstimatorOracle(Constant(), QueryBudget.of(60, 60)), members=(members.x, members.y),
                            nonmembers=(others.x, others.y))  # fmt: skip
    assert result.auc is None
    assert result.stopped is StopReason.BUDGET
    assert result.finding() is None


def test_too_few_rows_is_bad_input() -> None:
    """Fewer than 4 rows a side cannot give two folds: a one-line InvalidInput."""
    data = toy(3, 5)
    with pytest.raises(InvalidInput, match="at least 4 rows"):
        run_membership(EstimatorOracle(Constant(), QueryBudget.of(100, 60)), members=(data.x, data.y),
                       nonmembers=(data.x, data.y))  # fmt: skip
