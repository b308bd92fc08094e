"""Extraction's third signal: a principal's sampled queries lie off the training data's correlation structure.

The red team's extraction (:func:`mlwarden.redteam.extraction.synthetic_queries`) labels
real seed rows plus independent Gaussian noise, the random-perturbation synthesis of PRADA's
T-RND adversary (Juuti et al., "PRADA: protecting against DNN model stealing attacks",
EuroS&P 2019). Its marginal
distributions match the training data, so the profile's PSI and out-of-range share stay
quiet; the noise, though, fills the principal directions real rows leave empty. Measured on
the breast-cancer sample (30 features; 16 sampled rows of each 100-row call, the judge's
200 real rows in front; see ``docs/watch.md``), the share of sampled rows whose PCA residual
exceeds the training rows' 95th percentile (:mod:`mlwarden.monitor.training_shape`) was
0.34-0.64 for the red team and 0.04-0.09 for honest traffic of the same volume (training
rows, or held-out rows the model never saw). PRADA's own test (Shapiro-Wilk W of each query's
minimum L2 distance to earlier ones) did not separate them on this tabular data: W was
0.72-0.86 for the attack and 0.72-0.88 for honest traffic.

The share's null is set by the training data itself (about 5% of rows drawn from it are
"off"), so ``off_shape`` needs no tuning per dataset; 0 turns the signal off.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlwarden.monitor.rules.interface import RuleSettings

if TYPE_CHECKING:
    from mlwarden.monitor.binning import Distance
    from mlwarden.monitor.references import ModelReference
    from mlwarden.monitor.sampling import Sample

OFF_SHAPE = 0.3
"""Default ``off_shape``: the share of sampled rows off the training shape that marks extraction."""


@dataclass(frozen=True, slots=True)
class Thresholds:
    """``alerts.inference.extraction`` limits of the three far-from-training signals."""

    distance: float
    out_of_range: float
    off_shape: float

    @classmethod
    def of(cls, settings: RuleSettings) -> Thresholds:
        return cls(
            settings.get("distance", 0.5), settings.get("out_of_range", 0.1), settings.get("off_shape", OFF_SHAPE)
        )


def fired_signals(limits: Thresholds, d: Distance, off_shape: float | None) -> list[str]:
    """Which signals pass their limit: ``distance`` (mean PSI), ``out_of_range``, ``off_shape`` (None: unknown)."""
    out = []
    if d.psi_mean >= limits.distance:
        out.append("distance")
    if d.out_of_range >= limits.out_of_range:
        out.append("out_of_range")
    if off_shape is not None and limits.off_shape > 0 and off_shape >= limits.off_shape:
        out.append("off_shape")
    return out


def far_from_training(d: Distance, off_shape: float | None, signals: list[str]) -> str:
    """The numbers behind an extraction alert, and which signals fired."""
    shape = "" if off_shape is None else f", {off_shape:.0%} off its feature correlations"
    return f"mean PSI {d.psi_mean:.2f}, {d.out_of_range:.0%} out of range{shape}; fired: {', '.join(signals)}"


def off_shape_rows(reference: ModelReference, sample: Sample) -> int | None:
    """How many of the sample's rows lie off the training shape (None: the reference has no shape); computed once."""
    if reference.shape is None:
        return None
    key = f"{reference.model}#off_shape"
    found = sample.derived.get(key)
    if found is None:
        matrix = sample.derived.get(f"{reference.model}#matrix")  # left by the binning, else computed here
        matrix = reference.matrix(sample.inputs) if matrix is None else matrix
        found = sample.derived[key] = reference.shape.off(matrix)
    return int(found)


class OffShapeWindow:
    """Sampled rows and how many lie off the training shape, per entry, over the last ``window`` seconds."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._entries: deque[tuple[int, float, int, int]] = deque()
        self.rows = 0
        self.off = 0

    def add(self, index: int, at: float, rows: int, off: int) -> None:
        """Count one sampled entry; forget entries older than the window."""
        self._entries.append((index, at, rows, off))
        self.rows += rows
        self.off += off
        while self._entries and self._entries[0][1] < at - self.window:
            self._drop()

    def clear_upto(self, last_index: int) -> None:
        """Forget entries at or before ``last_index`` (an alert covered them)."""
        while self._entries and self._entries[0][0] <= last_index:
            self._drop()

    def _drop(self) -> None:
        _index, _at, rows, off = self._entries.popleft()
        self.rows -= rows
        self.off -= off

    @property
    def share(self) -> float | None:
        """Share of the window's sampled rows off the training shape (None when it holds none)."""
        return self.off / self.rows if self.rows else None


class OffShapeTracker:
    """One :class:`OffShapeWindow` per (model, principal) key."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.windows: dict[str, OffShapeWindow] = {}

    def add(self, key: str, index: int, at: float, reference: ModelReference, sample: Sample) -> None:
        off = off_shape_rows(reference, sample)
        if off is None:
            return
        window = self.windows.get(key)
        if window is None:
            window = self.windows[key] = OffShapeWindow(self.window)
        window.add(index, at, len(sample.inputs), off)

    def share(self, key: str) -> float | None:
        window = self.windows.get(key)
        return None if window is None else window.share

    def clear_upto(self, key: str, last_index: int) -> None:
        if key in self.windows:
            self.windows[key].clear_upto(last_index)
