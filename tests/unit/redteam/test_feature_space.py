"""The feature box: bounds checked on construction, perturbations measured as shares of each feature's range."""

from __future__ import annotations

import numpy as np
import pytest

from mlwarden.errors import InvalidInput
from mlwarden.redteam.feature_space import FeatureSpace


def test_relative_l2_is_the_rms_of_per_feature_shares() -> None:
    """Moving feature 0 by half its range and feature 1 not at all: sqrt((0.5^2 + 0) / 2)."""
    space = FeatureSpace(np.array([0.0, 10.0]), np.array([2.0, 1010.0]))
    moved = space.relative_l2(np.array([[1.0, 500.0]]), np.array([[2.0, 500.0]]))
    assert moved.tolist() == pytest.approx([np.sqrt(0.125)])
    same_share = space.relative_l2(np.array([[0.0, 10.0]]), np.array([[0.2, 110.0]]))
    assert same_share.tolist() == pytest.approx([0.1])  # 10 % of each range, whatever its units


def test_a_constant_feature_does_not_divide_by_zero() -> None:
    """A zero span counts as 1: a move of 0.5 on it is 0.5."""
    space = FeatureSpace.of_rows(np.array([[1.0, 3.0], [1.0, 5.0]]))
    assert space.span.tolist() == [1.0, 2.0]
    assert np.isfinite(space.relative_l2(np.array([[1.0, 3.0]]), np.array([[1.5, 3.0]]))).all()


@pytest.mark.parametrize(
    ("lows", "highs"),
    [([0.0, 1.0], [1.0]), ([2.0], [1.0]), ([np.nan], [1.0]), ([], [])],
)
def test_bad_bounds_are_refused(lows: list[float], highs: list[float]) -> None:
    """Mismatched lengths, low above high, NaN and empty bounds: InvalidInput."""
    with pytest.raises(InvalidInput):
        FeatureSpace(np.array(lows), np.array(highs))


def test_clip_keeps_rows_inside_the_box() -> None:
    """Values outside are moved to the nearest bound."""
    space = FeatureSpace(np.array([0.0, 0.0]), np.array([1.0, 2.0]))
    assert space.clip(np.array([[-1.0, 5.0]])).tolist() == [[0.0, 2.0]]
