"""Outlier scores against a fixed reference: ECOD (Li et al., 2022), as PyOD computes it, without refitting.

ECOD scores a row by the empirical tails of each of its values. PyOD estimates the tails on
the reference and the batch together, so it keeps the whole reference as its fitted state
and re-sorts reference and batch on every call. Here the reference's columns are kept
sorted (fitted once); scoring merges each batch column into them once, then reads the tails
of the rows in chunks of ``chunk_rows`` by binary search. The scores are PyOD's to the last
bit of rounding, and they do not depend on the chunk size: the tails are the whole batch's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QUANTILE = 0.99
"""Rows scoring above this quantile of the reference's own scores are outliers."""


def _tails(combined: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """-log of the left and right empirical tail probabilities of ``values`` in the sorted ``combined`` column."""
    n = len(combined)
    order = np.argsort(values, kind="stable")  # sorted keys: the binary searches walk the column once
    ordered = values[order]
    left, right = np.empty(len(values)), np.empty(len(values))
    left[order] = np.searchsorted(combined, ordered, side="right")
    right[order] = n - np.searchsorted(combined, ordered, side="left")
    return -np.log(left / n), -np.log(right / n)


def _skew_sign(column: np.ndarray) -> float:
    """Sign of the column's sample skewness (0 for a constant column), as ``scipy.stats.skew`` gives it."""
    centred = column - column.mean()
    m2 = float((centred**2).mean())
    if m2 <= (np.finfo(np.float64).eps * abs(float(column.mean()))) ** 2:
        return 0.0
    return float(np.sign((centred**3).mean()))


@dataclass(frozen=True, slots=True)
class EcodReference:
    """The reference's sorted columns and the score threshold."""

    sorted_columns: np.ndarray
    """(rows, columns), each column sorted ascending."""
    threshold: float

    @classmethod
    def fit(cls, ref_x: np.ndarray) -> EcodReference:
        """Fit on the reference rows; the threshold is the 99th percentile of their own (in-sample) scores."""
        fitted = cls(np.sort(ref_x, axis=0), 0.0)
        own = _score(fitted.sorted_columns, ref_x, None, len(ref_x))
        return cls(fitted.sorted_columns, float(np.quantile(own, QUANTILE)))

    def scores(self, x: np.ndarray, *, chunk_rows: int) -> np.ndarray:
        """Outlier score of each row of the batch ``x`` (higher is stranger): PyOD's ``decision_function``."""
        return _score(self.sorted_columns, x, x, chunk_rows)


def _score(sorted_columns: np.ndarray, x: np.ndarray, batch: np.ndarray | None, chunk_rows: int) -> np.ndarray:
    """Sum over columns of the larger tail (or the skew-side tail); tails over the reference joined by ``batch``."""
    total = np.zeros(len(x), dtype=np.float64)
    for j in range(x.shape[1]):
        column = sorted_columns[:, j]
        if batch is not None:
            column = np.sort(np.concatenate([column, batch[:, j]]), kind="stable")  # two sorted runs: a merge
        sign = _skew_sign(column)
        for start in range(0, len(x), chunk_rows):
            part = slice(start, start + chunk_rows)
            left, right = _tails(column, x[part, j])
            skewed = left if sign < 0 else right if sign > 0 else left + right
            total[part] += np.maximum(np.maximum(left, right), skewed)
    return total
