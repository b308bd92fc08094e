"""The fitted detectors against the libraries they replace, and their stored form read back or refused."""

from __future__ import annotations

import io
import json

import numpy as np
import polars as pl
import pytest
from pyod.models.ecod import ECOD
from scipy import stats
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from mlwarden.data.detector_file import DetectorFileError, from_bytes, to_bytes
from mlwarden.data.fitted_reference import fit_reference
from mlwarden.data.label_judges import FLIP_AGREEMENT, FLIP_DECISIVE, LabelJudges
from mlwarden.data.outliers import EcodReference
from mlwarden.data.screen import ScreenReport, _duplicates, ks_sorted, screen_against
from mlwarden.samples import mixed_frame


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    data = load_breast_cancer()
    order = np.random.default_rng(3).permutation(len(data.target))
    return data.data[order[:340]], data.target[order[:340]], data.data[order[340:]], data.target[order[340:]]


def test_ecod_threshold_and_scores_match_pyod(cancer: tuple[np.ndarray, ...]) -> None:
    """The threshold is PyOD's on the reference; a batch (with a flood of extreme rows) scores as PyOD scores it."""
    ref_x, _, x, _ = cancer
    pyod = ECOD().fit(ref_x)
    ours = EcodReference.fit(ref_x)
    assert ours.threshold == pytest.approx(float(np.quantile(pyod.decision_scores_, 0.99)), rel=1e-12)
    flood = np.vstack([x, np.repeat(ref_x.max(axis=0, keepdims=True) * 5, 40, axis=0)])
    for batch in (x, flood, x[:1]):
        np.testing.assert_allclose(ours.scores(batch), pyod.decision_function(batch), rtol=1e-9)


@pytest.mark.parametrize("loader", [load_breast_cancer, load_wine])
def test_the_reference_model_gives_sklearn_probabilities(loader: object) -> None:
    """The stored logistic regression reproduces scikit-learn's predict_proba, two classes and three."""
    data = loader()  # type: ignore[operator]
    judges = LabelJudges.fit(data.data, data.target)
    scaled = (data.data - judges.mean) / judges.scale
    model = LogisticRegression(max_iter=2000, C=1.0).fit(scaled, data.target)
    np.testing.assert_allclose(judges.model_proba(scaled), model.predict_proba(scaled), rtol=1e-6, atol=1e-9)


def test_asking_the_neighbourhood_only_where_the_model_doubts_changes_no_verdict(
    cancer: tuple[np.ndarray, ...],
) -> None:
    """Against both judges asked about every row: the same flagged and decisive rows, the same low agreements."""
    ref_x, ref_y, x, y = cancer
    y = y.copy()
    y[:20] = 1 - y[:20]
    judges = LabelJudges.fit(ref_x, ref_y)
    lazy = judges.agreement(x, y, judges.neighbourhood())
    scaled = (x - judges.mean) / judges.scale
    knn = KNeighborsClassifier(n_neighbors=judges.neighbours).fit(judges.reference, judges.reference_labels)
    rows = np.arange(len(y))
    full = np.maximum(knn.predict_proba(scaled)[rows, y], judges.model_proba(scaled)[rows, y])
    for limit in (FLIP_AGREEMENT, FLIP_DECISIVE):
        np.testing.assert_array_equal(np.flatnonzero(lazy <= limit), np.flatnonzero(full <= limit))
    low = full <= FLIP_AGREEMENT
    assert low.sum() >= 15
    np.testing.assert_allclose(lazy[low], full[low])


@pytest.mark.parametrize("labels", ["numbers", "strings"])
def test_stored_detectors_read_back_screen_alike(labels: str) -> None:
    """Written and read back (text column, string or number labels), detectors give the same report."""
    reference, batch = mixed_frame(600, 21), mixed_frame(300, 22)
    if labels == "strings":
        named = {0: "no", 1: "yes"}
        reference, batch = (
            f.with_columns(pl.col("target").replace_strict(named, return_dtype=pl.String)) for f in (reference, batch)
        )
    fitted = fit_reference(reference, label="target")
    back = from_bytes(to_bytes(fitted), "test")
    first, second = screen_against(batch, fitted), screen_against(batch, back)
    assert first.reasons == second.reasons
    assert first.flagged == second.flagged
    assert first.drift == second.drift
    np.testing.assert_array_equal(first.measured["label_agreement"], second.measured["label_agreement"])
    assert back.categories == fitted.categories
    assert back.categories["city"]


def _npz(**arrays: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.savez(out, **arrays)  # type: ignore[arg-type]
    return out.getvalue()


def _header(**changes: object) -> np.ndarray:
    header = {"format": 1, "numeric": ["a"], "label": None, "categories": {}, "outliers": None, "judges": None}
    header.update(changes)
    return np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "cannot be read"),
        (b"PK\x03\x04" + b"\x00" * 40, "cannot be read"),
        (_npz(header=_header(), values_0=np.array(["x"], dtype=object)), "cannot be read"),  # would need pickle
        (_npz(header=_header(format=99), values_0=np.zeros(3)), "format 99"),
        (_npz(header=_header(), values_0=np.zeros((3, 2))), "values_0"),
        (
            _npz(
                header=_header(outliers={"threshold": 1.0}),
                values_0=np.zeros(3),
                ecod_sorted=np.zeros((3, 4)),
                ecod_skew=np.zeros(4),
            ),
            "do not match",
        ),
        (_npz(header=_header(), values_1=np.zeros(3)), "values_0"),
        (_npz(values_0=np.zeros(3)), "header"),
    ],
)
def test_unreadable_detector_files_are_refused_with_a_reason(data: bytes, words: str) -> None:
    """Garbage, truncation, pickled arrays, another format, wrong shapes or missing arrays: a named error, no crash."""
    with pytest.raises(DetectorFileError, match="stored screening detectors cannot be read") as caught:
        from_bytes(data, "screening detectors of dataset:x:1")
    assert words in caught.value.message
    assert caught.value.message.startswith("screening detectors of dataset:x:1")


def test_duplicates_are_the_rows_numpy_unique_finds_repeated() -> None:
    """The hashed duplicate check flags exactly the rows after the first of each group ``np.unique`` finds."""
    rng = np.random.default_rng(5)
    x = np.vstack([np.round(rng.normal(size=(400, 3)), 1), np.zeros((4, 3)), -np.zeros((3, 3)), [[0.0004, 0, 0]]])
    report = ScreenReport()
    _duplicates(x, report)
    _, first = np.unique(np.round(x, 3), axis=0, return_index=True)
    expected = np.setdiff1d(np.arange(len(x)), first)
    assert expected.size > 7
    assert report.flagged["duplicate"] == expected.tolist()


@pytest.mark.parametrize(
    ("sizes", "shift", "discrete"),
    [
        ((20_000, 60_000), 0.0, False),
        ((20_000, 60_000), 0.03, False),
        ((15_000, 30_000), 0.0, True),
        ((300, 200), 0.2, False),
    ],
)
def test_ks_of_sorted_samples_is_scipys(sizes: tuple[int, int], shift: float, discrete: bool) -> None:
    """The merged-samples KS statistic and p-value equal ``scipy.stats.ks_2samp`` exactly (ties included)."""
    rng = np.random.default_rng(sum(sizes))
    a, b = rng.normal(size=sizes[0]), rng.normal(shift, 1, size=sizes[1])
    if discrete:
        a, b = np.round(a * 2), np.round(b * 2)
    a, b = np.sort(a), np.sort(b)
    expected = stats.ks_2samp(a, b)
    assert ks_sorted(a, b) == (float(expected.statistic), float(expected.pvalue))
