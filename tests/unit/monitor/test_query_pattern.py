"""The off-shape signal: PCA residual against the training rows, its window, its place among extraction's signals."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mlwarden.errors import ConfigError
from mlwarden.monitor.binning import Distance
from mlwarden.monitor.references import FeatureBins, ModelReference
from mlwarden.monitor.rules.interface import RuleSettings
from mlwarden.monitor.rules.query_pattern import OFF_SHAPE, OffShapeWindow, Thresholds, fired_signals, off_shape_rows
from mlwarden.monitor.rules_file import parse_rules
from mlwarden.monitor.sampling import Sample
from mlwarden.monitor.training_shape import OFF_QUANTILE, TrainingShape, fit_shape
from mlwarden.redteam.extraction import ExtractionOptions, synthetic_queries
from mlwarden.redteam.feature_space import FeatureSpace


def correlated(n: int, seed: int, features: int = 8) -> np.ndarray:
    """Rows driven by three latent factors (as real measurements are), plus a little independent noise."""
    rng = np.random.default_rng(seed)
    mixing = np.random.default_rng(1000).normal(size=(3, features))
    return rng.normal(size=(n, 3)) @ mixing + 0.02 * rng.normal(size=(n, features)) + np.arange(features)


def breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    x = load_breast_cancer().data
    train, held = train_test_split(x, test_size=0.25, random_state=0)
    return train, held


def shape_of(rows: np.ndarray) -> TrainingShape:
    shape = fit_shape(rows)
    assert shape is not None
    return shape


def share(shape: TrainingShape, rows: np.ndarray) -> float:
    return shape.off(rows) / len(rows)


def test_training_rows_are_off_at_the_quantile_rate() -> None:
    """By construction about 5% of the training rows lie beyond the limit; fresh rows of the same process alike."""
    shape = shape_of(correlated(2000, 1))
    assert 1 - OFF_QUANTILE - 0.001 <= share(shape, correlated(2000, 1)) <= 1 - OFF_QUANTILE + 0.001
    assert share(shape, correlated(2000, 2)) < 0.08
    assert shape.minor.shape[0] == 8
    assert 1 <= shape.minor.shape[1] <= 5  # the directions the three factors do not reach


@pytest.mark.parametrize("seed", range(5))
def test_the_red_teams_queries_are_off_the_shape_and_unseen_real_rows_are_not(seed: int) -> None:
    """Breast-cancer data: ``synthetic_queries`` around 70 held-out seeds, >= 25% off; the other held-out rows < 15%."""
    train, held = breast_cancer()
    shape = shape_of(train)
    options = ExtractionOptions()
    queries = synthetic_queries(held[:70], FeatureSpace.of_rows(train), 600, options.noise,
                                np.random.default_rng(seed))  # fmt: skip
    assert share(shape, queries) >= 0.35
    assert share(shape, held[70:]) < 0.15


def test_smaller_noise_leaves_the_shape_less_often() -> None:
    """The signal grows with the noise the attacker adds: 0.05 std is close to real rows, 0.25 is far off."""
    train, held = breast_cancer()
    shape, space, rng = shape_of(train), FeatureSpace.of_rows(train), np.random.default_rng(3)
    shares = [share(shape, synthetic_queries(held[:70], space, 600, noise, rng)) for noise in (0.05, 0.25, 0.5)]
    assert shares[0] < shares[1] < shares[2]


def test_independent_features_have_no_shape() -> None:
    """No nearly-empty principal direction: no shape, so the signal stays quiet rather than guess."""
    assert fit_shape(np.random.default_rng(4).normal(size=(1000, 6))) is None


@pytest.mark.parametrize(
    "rows",
    [np.zeros((0, 4)), np.ones((100, 1)), correlated(15, 5), np.full((100, 3), 2.0), np.zeros(10)],
    ids=["empty", "one-feature", "too-few-rows", "constant", "not-a-table"],
)
def test_a_table_too_small_or_flat_has_no_shape(rows: np.ndarray) -> None:
    """Too few rows (under 30 or twice the features), one feature, no variance at all: None, never an exception."""
    assert fit_shape(rows) is None


def test_rows_with_a_nan_are_left_out_of_the_fit_and_a_nan_query_is_off() -> None:
    """A NaN training row does not poison the axes; a query with an unreadable cell counts as off."""
    rows = correlated(500, 6)
    holed = rows.copy()
    holed[::10, 2] = np.nan
    shape = shape_of(holed)
    assert np.isclose(shape.limit, shape_of(rows[~np.isnan(holed).any(axis=1)]).limit)
    query = rows[:3].copy()
    query[1, 0] = np.nan
    assert list(shape.residuals(query) == np.inf) == [False, True, False]


def test_an_exactly_collinear_feature_keeps_a_positive_limit() -> None:
    """B = 2A in every training row: keeping that relation is on the shape, breaking it is off."""
    rng = np.random.default_rng(7)
    a, c = rng.normal(size=400), rng.normal(size=400)
    shape = shape_of(np.column_stack([a, 2 * a, c]))
    assert shape.limit > 0
    assert shape.off(np.array([[1.0, 2.0, 0.3], [-0.5, -1.0, 1.0]])) == 0
    assert shape.off(np.array([[1.0, 2.5, 0.3]])) == 1


finite = st.floats(-1e3, 1e3, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(scales=arrays(np.float64, 8, elements=st.floats(1e-2, 1e3)), shifts=arrays(np.float64, 8, elements=finite),
       seed=st.integers(0, 2**16))  # fmt: skip
def test_residuals_do_not_depend_on_each_features_unit_or_origin(scales: np.ndarray, shifts: np.ndarray,
                                                                 seed: int) -> None:  # fmt: skip
    """Fitting and asking in other units (x * a + b per feature) gives the same residuals and limit."""
    train, queries = correlated(300, seed), correlated(50, seed + 1) + np.random.default_rng(seed).normal(size=(50, 8))
    plain, moved = shape_of(train), shape_of(train * scales + shifts)
    assert np.isclose(moved.limit, plain.limit, rtol=1e-6)
    assert np.allclose(moved.residuals(queries * scales + shifts), plain.residuals(queries), rtol=1e-6, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), order=st.randoms(use_true_random=False))
def test_the_shape_does_not_depend_on_the_order_of_training_rows(seed: int, order: random.Random) -> None:
    """A permutation of the training rows gives the same limit and residuals."""
    train = correlated(200, seed)
    index = list(range(len(train)))
    order.shuffle(index)
    queries = correlated(20, seed + 1) * 1.3
    plain, shuffled = shape_of(train), shape_of(train[index])
    assert np.isclose(shuffled.limit, plain.limit, rtol=1e-9)
    assert np.allclose(shuffled.residuals(queries), plain.residuals(queries), rtol=1e-9, atol=1e-12)


entries = st.lists(st.tuples(st.floats(0, 1000), st.integers(1, 16), st.integers(0, 16)), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(found=entries, window=st.floats(1, 500), cleared=st.integers(-1, 40))
@example(found=[(0.0, 1, 1), (300.0, 1, 0)], window=300.0, cleared=-1)  # exactly ``window`` old: still counted
def test_the_window_share_matches_a_naive_recount(found: list[tuple[float, int, int]], window: float,
                                                  cleared: int) -> None:  # fmt: skip
    """Entries in time order: the share is off/rows over those within ``window`` of the last and after ``cleared``."""
    rows = [(i, at, n, min(off, n)) for i, (at, n, off) in enumerate(sorted(found))]
    tracked = OffShapeWindow(window)
    for index, at, n, off in rows:
        tracked.add(index, at, n, off)
    tracked.clear_upto(cleared)
    last = rows[-1][1]
    kept = [(n, off) for index, at, n, off in rows if index > cleared and at >= last - window]
    total = sum(n for n, _ in kept)
    expected = sum(off for _, off in kept) / total if total else None
    assert tracked.share == (pytest.approx(expected) if expected is not None else None)


def _distance(psi: float, out: float) -> Distance:
    return Distance(rows=100, psi_mean=psi, psi_max=psi, ks_max=0.0, drifted=(), out_of_range=out)


@pytest.mark.parametrize(
    ("psi", "out", "off", "limits", "signals"),
    [
        (0.1, 0.0, 0.48, {}, ["off_shape"]),
        (0.1, 0.0, 0.05, {}, []),
        (0.1, 0.0, None, {}, []),  # no shape for this model: the signal is unknown, never assumed
        (0.9, 0.2, 0.5, {}, ["distance", "out_of_range", "off_shape"]),
        (0.1, 0.0, 0.48, {"off_shape": 0.0}, []),  # 0 turns it off
        (0.1, 0.0, 0.48, {"off_shape": 0.6}, []),
        (0.5, 0.0, 0.0, {}, ["distance"]),
    ],
)  # fmt: skip
def test_fired_signals_names_each_signal_past_its_limit(
    psi: float, out: float, off: float | None, limits: dict[str, float], signals: list[str]
) -> None:
    """Each of the three limits on its own; the defaults are distance 0.5, out_of_range 0.1, off_shape 0.3."""
    thresholds = Thresholds.of(RuleSettings(extra=limits))
    assert fired_signals(thresholds, _distance(psi, out), off) == signals


def _reference(shape: TrainingShape | None) -> ModelReference:
    bins = tuple(FeatureBins(f"f{j}", np.array([0.0]), np.array([0.5, 0.5]), -1.0, 1.0) for j in range(8))
    return ModelReference("m:1", "d:1", bins, tuple(range(8)), tuple(f"f{j}" for j in range(8)), {}, shape)


def test_off_shape_rows_counts_a_sample_once_and_is_unknown_without_a_shape() -> None:
    """The count is kept on the sample (the rule and a restart see the same number); no shape gives None."""
    train = correlated(400, 8)
    shape = shape_of(train)
    rows = np.vstack([train[:4], train[:4] + np.random.default_rng(9).normal(size=(4, 8))])
    sample = Sample(rows.tolist(), [0] * 8)
    assert off_shape_rows(_reference(None), sample) is None
    count = off_shape_rows(_reference(shape), sample)
    assert count == shape.off(rows)
    assert count is not None
    assert count >= 4
    assert sample.derived["m:1#off_shape"] == count


def test_the_rules_file_takes_off_shape_and_refuses_a_bad_value_naming_the_line() -> None:
    """``off_shape`` is a known setting (default 0.3); a negative one is a ConfigError with its line."""
    config = parse_rules("alerts:\n  inference.extraction: {off_shape: 0.4}\n")
    assert Thresholds.of(config.builtin["inference.extraction"]).off_shape == 0.4
    assert Thresholds.of(parse_rules("").builtin["inference.extraction"]).off_shape == OFF_SHAPE
    with pytest.raises(ConfigError, match=r"line 3: alerts.inference.extraction.off_shape must be a number"):
        parse_rules("alerts:\n  inference.extraction:\n    off_shape: -1\n")
    with pytest.raises(ConfigError, match=r"known: .*off_shape"):
        parse_rules("alerts:\n  inference.extraction: {of_shape: 1}\n")
