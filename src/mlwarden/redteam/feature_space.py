"""The box the attacker works in: per-feature lower and upper bounds, from rows it holds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlwarden.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class FeatureSpace:
    """Per-feature bounds (``lows <= highs``) of numeric rows; perturbations are measured against their span."""

    lows: np.ndarray
    highs: np.ndarray

    def __post_init__(self) -> None:
        if self.lows.ndim != 1 or self.lows.shape != self.highs.shape or not len(self.lows):
            raise InvalidInput(f"feature bounds must be two vectors of one length, got {self.lows.shape} and "
                               f"{self.highs.shape}")  # fmt: skip
        if not (np.all(np.isfinite(self.lows)) and np.all(np.isfinite(self.highs))):
            raise InvalidInput("feature bounds must be finite numbers")
        if np.any(self.lows > self.highs):
            raise InvalidInput("every feature's lower bound must be at most its upper bound")

    @classmethod
    def of_rows(cls, rows: np.ndarray) -> FeatureSpace:
        """The smallest box holding ``rows`` (a 2-D numeric array with at least one row)."""
        data = np.asarray(rows, dtype=np.float64)
        if data.ndim != 2 or not len(data):
            raise InvalidInput(f"need a non-empty 2-D array of rows, got shape {data.shape}")
        return cls(data.min(axis=0), data.max(axis=0))

    @property
    def width(self) -> int:
        """Number of features."""
        return len(self.lows)

    @property
    def span(self) -> np.ndarray:
        """``highs - lows``, with a zero span (a constant feature) counted as 1 so divisions stay finite."""
        span = self.highs - self.lows
        return np.where(span > 0, span, 1.0)

    def clip(self, rows: np.ndarray) -> np.ndarray:
        """``rows`` moved into the box."""
        return np.asarray(np.clip(rows, self.lows, self.highs), np.float64)

    def relative_l2(self, original: np.ndarray, moved: np.ndarray) -> np.ndarray:
        """Per row: the root mean square of the change, each feature's change as a fraction of its span.

        0.05 reads as "each feature moved by 5 % of its range, on average (quadratically)"; 1.0
        is a move across the whole box.
        """
        scaled = (np.asarray(moved, np.float64) - np.asarray(original, np.float64)) / self.span
        return np.asarray(np.sqrt(np.mean(scaled**2, axis=1)), np.float64)
