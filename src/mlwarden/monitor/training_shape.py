"""The training rows' correlation structure, and how far a query lies off it (PCA residual, the Q statistic).

Real tabular features move together (a tumour's radius, perimeter and area; a customer's
income and spending), so the standardised training rows fill only a few principal
directions: the smallest principal axes, which together hold ``MINOR_VARIANCE`` of the
variance, are nearly empty. A row's residual is its squared length in that minor subspace
(the squared prediction error, SPE, or Q statistic of Jackson and Mudholkar, "Control
procedures for residuals associated with principal component analysis", Technometrics
21(3), 1979; used for anomaly detection by Shyu et al., "A novel anomaly detection scheme
based on principal component classifier", ICDM 2003). Rows drawn from the training
distribution keep it small; a synthetic row made by adding independent per-feature noise to a
real one does not, whatever its marginal distributions look like.

Invariant to each feature's unit and origin (the rows are standardised by the training
mean and standard deviation) and to the order of the training rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MINOR_VARIANCE = 0.01
"""The minor subspace: the smallest principal axes whose variances add up to at most this share of the total."""
OFF_QUANTILE = 0.95
"""A row is off the training shape when its residual exceeds this quantile of the training rows' residuals."""
MIN_ROWS = 30
"""Fewer complete training rows than this (or than twice the features) give no shape: the axes would be noise."""


@dataclass(frozen=True, slots=True)
class TrainingShape:
    """Centre, scale and minor principal axes of the training rows, and the residual limit of "off the shape"."""

    center: np.ndarray
    scale: np.ndarray
    minor: np.ndarray
    """``(features, k)`` orthonormal columns: the principal axes the training rows barely use."""
    limit: float
    """The ``OFF_QUANTILE`` quantile of the training rows' residuals."""

    def residuals(self, matrix: np.ndarray) -> np.ndarray:
        """Per row: squared length in the minor subspace (standardised units); a row with a NaN cell is +inf."""
        z = (np.asarray(matrix, dtype=np.float64) - self.center) / self.scale
        out = np.einsum("ij,ij->i", z @ self.minor, z @ self.minor)
        return np.where(np.isnan(out), np.inf, out)

    def off(self, matrix: np.ndarray) -> int:
        """How many rows lie off the training shape (residual above the limit)."""
        return int(np.count_nonzero(self.residuals(matrix) > self.limit))


def fit_shape(matrix: np.ndarray) -> TrainingShape | None:
    """The shape of the training rows (rows with a NaN are left out); None when there is no minor subspace."""
    rows = np.asarray(matrix, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] < 2:
        return None
    rows = rows[~np.isnan(rows).any(axis=1)]
    if len(rows) < max(MIN_ROWS, 2 * rows.shape[1]):
        return None
    center = rows.mean(axis=0)
    spread = rows.std(axis=0)
    scale = np.where(spread > 0, spread, 1.0)
    z = (rows - center) / scale
    values, vectors = np.linalg.eigh(z.T @ z / len(z))  # ascending
    total = float(values.sum())
    if total <= 0:
        return None
    k = int(np.searchsorted(np.cumsum(np.clip(values, 0, None)) / total, MINOR_VARIANCE, side="right"))
    if k == 0:
        return None  # no nearly-empty direction: independent features, nothing to be off
    shape = TrainingShape(center, scale, vectors[:, :k], 0.0)
    found = shape.residuals(rows)
    limit = max(float(np.quantile(found, OFF_QUANTILE)), 1e-9 * k)  # exactly collinear features: not zero
    return TrainingShape(center, scale, vectors[:, :k], limit)
