"""Outlier scores against a fixed reference: ECOD (Li et al., 2022) over the reference's own tails.

PyOD's ECOD re-estimates each column's tails on the reference and the batch together, so a
row's score depends on the rest of its batch: a flood of outliers widens the tails and hides
itself, and a chunk of a batch scores differently from the whole. Here each row is scored as
if it alone joined the reference, ``(#reference <= x + 1) / (n + 1)`` for the left tail (the
right likewise), exactly the tails PyOD computes for a one-row batch. A row's score is then a
function of the row and the reference only: chunks and whole batches get the same scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QUANTILE = 0.99
"""Rows scoring above this quantile of the reference's own scores are outliers."""


def _skew_sign(ref_x: np.ndarray) -> np.ndarray:
    """Sign of each column's sample skewness (0 for a constant column), as ``scipy.stats.skew`` gives it."""
    centred = ref_x - ref_x.mean(axis=0)
    m2 = (centred**2).mean(axis=0)
    m3 = (centred**3).mean(axis=0)
    constant = m2 <= (np.finfo(np.float64).eps * np.abs(ref_x.mean(axis=0))) ** 2
    return np.where(constant, 0.0, np.sign(m3))


def _tails(sorted_column: np.ndarray, values: np.ndarray, *, joined: bool) -> tuple[np.ndarray, np.ndarray]:
    """-log of the left and right empirical tail probabilities of ``values`` in the column."""
    n = len(sorted_column)
    order = np.argsort(values, kind="stable")  # sorted keys: the binary searches walk the column once
    ordered = values[order]
    left, right = np.empty(len(values)), np.empty(len(values))
    left[order] = np.searchsorted(sorted_column, ordered, side="right")
    right[order] = n - np.searchsorted(sorted_column, ordered, side="left")
    if joined:  # the row joins the reference: it counts itself once in each tail
        return -np.log((left + 1) / (n + 1)), -np.log((right + 1) / (n + 1))
    return -np.log(left / n), -np.log(right / n)


@dataclass(frozen=True, slots=True)
class EcodReference:
    """The reference's sorted columns, each column's skew direction, and the score threshold."""

    sorted_columns: np.ndarray
    """(rows, columns), each column sorted ascending."""
    skew_sign: np.ndarray
    threshold: float

    @classmethod
    def fit(cls, ref_x: np.ndarray) -> EcodReference:
        """Fit on the reference rows; the threshold is the 99th percentile of their own (in-sample) scores."""
        fitted = cls(np.sort(ref_x, axis=0), _skew_sign(ref_x), 0.0)
        own = fitted._score(ref_x, joined=False)
        return cls(fitted.sorted_columns, fitted.skew_sign, float(np.quantile(own, QUANTILE)))

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Outlier score of each row of ``x`` (higher is stranger), independent of the other rows."""
        return self._score(x, joined=True)

    def _score(self, x: np.ndarray, *, joined: bool) -> np.ndarray:
        total = np.zeros(len(x), dtype=np.float64)
        for j in range(x.shape[1]):
            left, right = _tails(self.sorted_columns[:, j], x[:, j], joined=joined)
            sign = self.skew_sign[j]
            skewed = left if sign < 0 else right if sign > 0 else left + right
            total += np.maximum(np.maximum(left, right), skewed)
        return total
