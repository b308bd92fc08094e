"""The run's rows as the ML suites take them: numeric features in the declared order, integer labels."""

from __future__ import annotations

import pytest

from mlwarden.errors import InvalidInput
from mlwarden.redteam.attack_data import SHARES, attack_data, suite_budget
from mlwarden.redteam.suites import FeatureRange, LabelledRows, SuiteOptions
from mlwarden.redteam.target import Target, Tokens
from tests.unit.redteam.fake_gateway import FakeResponse, ScriptedClient

TRAIN = LabelledRows([{"a": 1.0, "b": 10}, {"a": 2.0, "b": 30}], [0, 1])
HELD = LabelledRows([{"b": 20, "a": 5.0}], [1.0])


def test_rows_become_a_matrix_in_the_features_order_and_the_box_spans_both_sets() -> None:
    """Features (b, a) order the columns; the box covers training and held-out rows; the attacker holds the latter."""
    data = attack_data(SuiteOptions(features=(FeatureRange("b"), FeatureRange("a")), reference=TRAIN, holdout=HELD),
                       "evasion")  # fmt: skip
    assert data.members is not None
    assert data.members.x.tolist() == [[10.0, 1.0], [30.0, 2.0]]
    assert data.members.y is not None
    assert data.members.y.tolist() == [0, 1]
    assert data.sample.tolist() == [[20.0, 5.0]]
    assert data.space.lows.tolist() == [10.0, 1.0]
    assert data.space.highs.tolist() == [30.0, 5.0]


def test_without_held_out_rows_the_attacker_uses_the_training_rows() -> None:
    """Only a reference set: it is the sample too (feature order from the rows' own keys)."""
    data = attack_data(SuiteOptions(reference=TRAIN), "extraction")
    assert data.holdout is None
    assert data.sample.tolist() == [[1.0, 10.0], [2.0, 30.0]]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (SuiteOptions(), "needs rows"),
        (SuiteOptions(reference=LabelledRows([{"a": "paris"}])), "numeric features"),
        (SuiteOptions(reference=LabelledRows([{"a": float("nan")}])), "numeric features"),
        (SuiteOptions(reference=LabelledRows([{"a": 1.0}], ["yes"])), "integer class labels"),
        (SuiteOptions(reference=LabelledRows([{"a": 1.0}], [0.5])), "integer class labels"),
    ],
)
def test_rows_the_suites_cannot_use_are_a_one_line_error(options: SuiteOptions, message: str) -> None:
    """No rows, a text or NaN feature, non-integer labels: InvalidInput naming the problem (the run: not checked)."""
    with pytest.raises(InvalidInput, match=message):
        attack_data(options, "membership")


def test_each_ml_suite_takes_its_share_of_the_runs_budget_and_no_more_than_is_left() -> None:
    """--budget is for the three suites together: their shares add up to at most it; a spent target caps them."""
    target = Target(base_url="http://gw.test", model="m", tokens=Tokens(inference="t"), budget=1000,
                    client=ScriptedClient(lambda *_: FakeResponse(500)))  # fmt: skip
    options = SuiteOptions(budget=2000, seconds=7)
    shares = {name: suite_budget(target, options, name).rows for name in SHARES}
    assert shares == {"extraction": 800, "evasion": 900, "membership": 300}
    assert sum(int(options.budget * s) for s in SHARES.values()) <= options.budget
    target.queries = 950
    assert suite_budget(target, options, "extraction").rows == 50
    assert 0 < suite_budget(target, options, "membership").time_left() <= 7
