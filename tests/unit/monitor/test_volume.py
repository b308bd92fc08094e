"""Counting in bulk keeps the exact state of counting one by one; binning all features at once keeps the bins."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mlwarden.monitor.references import FeatureBins, ModelReference
from mlwarden.monitor.rules.volume import PendingLight, RowVolume
from mlwarden.monitor.stream import Light
from mlwarden.monitor.windows import BurstCounter

# (key, time step, weight, clear?) per event; time steps may be negative (a clock that steps back)
EVENTS = st.lists(
    st.tuples(st.sampled_from("abc"), st.integers(-30, 40), st.integers(0, 16), st.booleans()), max_size=120
)


def _state(counter: BurstCounter | RowVolume, keys: str = "abc") -> list[tuple[float, int | None]]:
    return [(counter.total(k), counter.first_index(k)) for k in keys]


@settings(max_examples=300, deadline=None)
@given(events=EVENTS, window=st.sampled_from([0.0, 10.0, 60.0]), run=st.integers(1, 9))
def test_runs_counted_at_once_give_the_state_of_one_add_each(
    events: list[tuple[str, int, int, bool]], window: float, run: int
) -> None:
    """Whatever the times (even decreasing) and clears, bulk runs read the same totals and first indices."""
    one_by_one, bulk = BurstCounter(math.inf, window), RowVolume(window)
    pending: dict[str, tuple[list[int], list[float], list[float]]] = {}
    at = 0.0

    def flush(key: str) -> None:
        indices, ats, weights = pending.pop(key, ([], [], []))
        bulk.extend(key, indices, ats, weights)

    for index, (key, step, weight, clear) in enumerate(events):
        at += step
        if clear:  # an alert already covers this key's events so far
            flush(key)
            one_by_one.clear_upto(key, index)
            bulk.clear_upto(key, index)
        else:
            one_by_one.add(key, index, at, float(weight))
            group = pending.setdefault(key, ([], [], []))
            group[0].append(index)
            group[1].append(at)
            group[2].append(float(weight))
            if len(group[0]) >= run:
                flush(key)
                assert _state(bulk, key) == _state(one_by_one, key)
    for key in "abc":
        flush(key)
    assert _state(bulk) == _state(one_by_one)


def test_pending_light_counts_each_key_up_to_the_entry_that_reads_it() -> None:
    """A key's light predictions before an index are counted, later ones wait; several principals merge in order."""
    light = {
        ("model:m", "alice"): Light([1, 4, 9], [1.0, 2.0, 3.0], [2.0, 3.0, 4.0]),
        ("model:m", "bob"): Light([2, 5], [1.0, 2.0], [1.0, 1.0]),
    }
    volume = RowVolume(60.0)
    pending = PendingLight(light, lambda subject, _principal: subject, volume)
    pending.upto("model:m", 5)
    assert (volume.total("model:m"), volume.first_index("model:m")) == (6.0, 1)  # entries 1, 2 and 4
    pending.rest()
    assert volume.total("model:m") == 11.0
    pending.rest()  # nothing is counted twice
    assert volume.total("model:m") == 11.0


FEATURES = 6


def _reference(edge_sets: list[list[float]]) -> ModelReference:
    features = tuple(
        FeatureBins(f"f{j}", np.array(edges), np.full(len(edges) + 1, 1 / (len(edges) + 1)), -5.0, 5.0)
        for j, edges in enumerate(edge_sets)
    )
    names = tuple(f"f{j}" for j in range(FEATURES))
    return ModelReference("m:1", "d:1", features, tuple(range(FEATURES)), names, {})


CELLS = st.one_of(
    st.floats(-8, 8), st.integers(-8, 8), st.booleans(), st.none(), st.just("1.5"),
    st.sampled_from([math.inf, -math.inf, math.nan]),
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    edge_sets=st.lists(
        st.sets(st.integers(-6, 6), min_size=1, max_size=7).map(lambda s: sorted(float(v) for v in s)),
        min_size=FEATURES, max_size=FEATURES,
    ),
    rows=st.lists(st.one_of(st.lists(CELLS, min_size=0, max_size=FEATURES + 1), st.just("not a row")), max_size=8),
)  # fmt: skip
def test_one_step_binning_matches_searchsorted_feature_by_feature(
    edge_sets: list[list[float]], rows: list[object]
) -> None:
    """Cells read as before (numbers only, never bools or text) and bins as ``searchsorted(side="left")`` gives."""
    reference = _reference(edge_sets)
    expected = np.full((len(rows), FEATURES), np.nan)
    for i, row in enumerate(rows):
        for j in range(FEATURES):
            value = row[j] if isinstance(row, list) and j < len(row) else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                expected[i, j] = float(value)
    matrix = reference.matrix(rows)
    assert np.array_equal(matrix, expected, equal_nan=True)
    bins = np.empty(expected.shape, dtype=np.int16)
    for j, feature in enumerate(reference.features):
        bins[:, j] = np.searchsorted(feature.edges, expected[:, j], side="left")
    assert np.array_equal(reference.bins(matrix), bins)
