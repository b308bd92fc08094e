"""Outlier scores against a fixed reference: ECOD (Li et al., 2022), as PyOD computes it, without refitting.

ECOD scores a row by the empirical tails of each of its values. PyOD estimates the tails on
the reference and the batch together, so it keeps the whole reference as its fitted state
and re-sorts reference and batch on every call. Here the reference's columns are kept
sorted (fitted once); scoring sorts each batch column once, merges it into the reference's,
and reads every row's tails by binary search, one column at a time. The scores are PyOD's to
the last bits of rounding (the tails are the whole batch's, as there).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QUANTILE = 0.99
"""Rows scoring above this quantile of the reference's own scores are outliers."""


def _tails(reference_column: np.ndarray, values: np.ndarray, *, joined: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """-log of the left and right empirical tail probabilities of each value, and the column's skew sign.

    With ``joined``, the tails are taken in the sorted reference column joined by ``values``
    (PyOD's joint estimate); otherwise ``values`` are the reference's own and already in it.
    """
    order = np.argsort(values)  # equal values get equal tails: no need for a stable order
    ordered = values[order]
    column = np.sort(np.concatenate([reference_column, ordered]), kind="stable") if joined else reference_column
    n = len(column)  # (two sorted runs: the stable sort merges them in one pass)
    left, right = np.empty(len(values)), np.empty(len(values))
    left[order] = np.searchsorted(column, ordered, side="right")  # sorted keys: one walk along the column
    right[order] = n - np.searchsorted(column, ordered, side="left")
    return -np.log(left / n), -np.log(right / n), _skew_sign(column)


def _skew_sign(column: np.ndarray) -> float:
    """Sign of the column's sample skewness (0 for a constant column), as ``scipy.stats.skew`` gives it."""
    mean = float(column.mean())
    centred = column - mean
    squared = centred * centred
    if float(squared.mean()) <= (np.finfo(np.float64).eps * abs(mean)) ** 2:
        return 0.0
    return float(np.sign((squared * centred).mean()))


@dataclass(frozen=True, slots=True)
class EcodReference:
    """The reference's sorted columns and the score threshold."""

    sorted_columns: np.ndarray
    """(rows, columns), each column sorted ascending."""
    threshold: float

    @classmethod
    def fit(cls, ref_x: np.ndarray) -> EcodReference:
        """Fit on the reference rows; the threshold is the 99th percentile of their own (in-sample) scores."""
        fitted = np.sort(ref_x, axis=0)
        return cls(fitted, float(np.quantile(_score(fitted, ref_x, joined=False), QUANTILE)))

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Outlier score of each row of the batch ``x`` (higher is stranger): PyOD's ``decision_function``.

        Column by column: the working memory is a few arrays of one column, whatever the width.
        """
        return _score(self.sorted_columns, x, joined=True)


def _score(sorted_columns: np.ndarray, x: np.ndarray, *, joined: bool) -> np.ndarray:
    """Sum over columns of the larger tail, or of the tail the column's skew points to when that is larger."""
    total = np.zeros(len(x), dtype=np.float64)
    for j in range(sorted_columns.shape[1]):
        left, right, sign = _tails(sorted_columns[:, j], x[:, j], joined=joined)
        skewed = left if sign < 0 else right if sign > 0 else left + right
        total += np.maximum(np.maximum(left, right), skewed)
    return total
