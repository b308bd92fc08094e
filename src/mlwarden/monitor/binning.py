"""Sampled rows in a sliding window, counted per feature and bin: PSI and KS against the training shares.

PSI is batch screening's formula (shares clipped at 1e-4); KS is the largest gap between the
window's and the training's cumulative shares at the profile's quantile edges.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from mlwarden.monitor.references import ModelReference


@dataclass(frozen=True, slots=True)
class Distance:
    """How far a window's rows lie from the training profile."""

    rows: int
    psi_mean: float
    psi_max: float
    ks_max: float
    drifted: tuple[str, ...]
    """Features whose PSI and KS both pass the limits."""
    out_of_range: float
    """Share of feature values outside the training range."""


class BinnedWindow:
    """Bin counts of the rows sampled in the last ``window`` seconds."""

    def __init__(self, reference: ModelReference, window: float) -> None:
        self.reference = reference
        self.window = window
        width = max(len(f.expected) for f in reference.features)
        self._expected = np.full((len(reference.features), width), 1e-4)
        for j, feature in enumerate(reference.features):
            self._expected[j, : len(feature.expected)] = np.clip(feature.expected, 1e-4, None)
        self._valid = np.zeros_like(self._expected, dtype=bool)
        for j, feature in enumerate(reference.features):
            self._valid[j, : len(feature.expected)] = True
        self.counts = np.zeros(self._expected.shape, dtype=np.int64)
        self.outside = 0.0
        self._rows: deque[tuple[int, float, np.ndarray, float]] = deque()
        self.rows = 0

    def add(self, index: int, at: float, bins: np.ndarray, outside: float, rows: int) -> None:
        """Count the binned rows of one entry (and their out-of-range total); forget rows older than the window."""
        self.counts += self._count(bins)
        self.outside += outside
        self.rows += rows
        self._rows.append((index, at, bins, outside))
        horizon = at - self.window
        while self._rows and self._rows[0][1] < horizon:
            self._drop()

    def _count(self, bins: np.ndarray) -> np.ndarray:
        """Per (feature, bin) counts of a block of binned rows."""
        features, width = self.counts.shape
        flat = (np.arange(features) * width + bins).ravel()
        return np.bincount(flat, minlength=features * width).reshape(features, width)

    def clear_upto(self, last_index: int) -> None:
        """Forget rows of entries at or before ``last_index``."""
        while self._rows and self._rows[0][0] <= last_index:
            self._drop()

    def first_index(self) -> int | None:
        return self._rows[0][0] if self._rows else None

    def _drop(self) -> None:
        _index, _at, bins, outside = self._rows.popleft()
        self.counts -= self._count(bins)
        self.outside -= outside
        self.rows -= len(bins)

    def distance(self, psi_limit: float, ks_limit: float) -> Distance:
        """PSI and KS per feature against the training shares, and the out-of-range share."""
        n = max(self.rows, 1)
        shares = np.where(self._valid, np.clip(self.counts / n, 1e-4, None), 1e-4)
        psi = np.sum(np.where(self._valid, (shares - self._expected) * np.log(shares / self._expected), 0.0), axis=1)
        gaps = np.abs(np.cumsum(np.where(self._valid, self.counts / n, 0), axis=1) - np.cumsum(
            np.where(self._valid, self._expected, 0), axis=1))  # fmt: skip
        ks = gaps[:, :-1].max(axis=1) if gaps.shape[1] > 1 else np.zeros(len(psi))
        names = [f.name for f in self.reference.features]
        drifted = tuple(names[j] for j in range(len(names)) if psi[j] > psi_limit and ks[j] > ks_limit)
        return Distance(self.rows, float(psi.mean()), float(psi.max()), float(ks.max()), drifted,
                        self.outside / n)  # fmt: skip
