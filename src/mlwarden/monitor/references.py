"""What a model's traffic is compared with: its training dataset's profile and label rates.

The training dataset is the first one in the model's registered lineage; its profile (the
same quantiles batch screening bins by) gives, per feature, the bin edges and the share of
training rows in each bin, and its label column the class rates the model should answer with.
Rows are read through the registry, which checks them against their signed attestations.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import structlog

from mlwarden.errors import MlwardenError
from mlwarden.monitor.training_shape import TrainingShape, fit_shape
from mlwarden.registry.dataset_versions import dataset_file, get_dataset
from mlwarden.registry.datasets import scan
from mlwarden.registry.models import check_row, get_version
from mlwarden.workspace import Workspace

log = structlog.get_logger("mlwarden.watch")

_PLAIN_NUMBERS = frozenset({int, float})
"""Cell types read as they are (``bool`` is an ``int`` subclass, but its type is not ``int``)."""
_INTERIOR = ("0.01", "0.05", "0.25", "0.5", "0.75", "0.95", "0.99")


@dataclass(frozen=True, slots=True)
class FeatureBins:
    """One feature's training distribution: bin edges and the share of training rows per bin."""

    name: str
    edges: np.ndarray
    """Increasing interior edges; bin ``j`` holds ``edges[j-1] < x <= edges[j]`` (the last: above all)."""
    expected: np.ndarray
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class ModelReference:
    """The training profile a model's inputs and outputs are compared with."""

    model: str
    dataset: str
    features: tuple[FeatureBins, ...]
    positions: tuple[int, ...]
    """Which input column (by position) each feature is."""
    names: tuple[str, ...]
    """Every input column name, in order (to read rows given as objects)."""
    class_rates: dict[str, float]
    """Label value (as text) → share of training rows; empty when the label is unknown."""
    shape: TrainingShape | None = None
    """The training rows' correlation structure (None: unknown; the extraction rule's off-shape signal stays quiet)."""

    edge_table: np.ndarray = field(init=False, repr=False, compare=False)
    """Every feature's edges side by side, padded with +inf (to bin all features in one step)."""
    edge_counts: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        width = max(len(f.edges) for f in self.features)
        table = np.full((len(self.features), width), np.inf)
        for j, feature in enumerate(self.features):
            table[j, : len(feature.edges)] = feature.edges
        object.__setattr__(self, "edge_table", table)
        object.__setattr__(self, "edge_counts", np.array([len(f.edges) for f in self.features]))

    def matrix(self, rows: list[Any]) -> np.ndarray:
        """The rows' profiled features as floats (rows as lists or objects; unreadable cells are NaN)."""
        positions = self.positions
        cells: list[list[float]] = []
        for row in rows:
            values = [row.get(n) for n in self.names] if isinstance(row, dict) else row
            if not isinstance(values, list):
                cells.append([math.nan] * len(positions))
                continue
            if set(map(type, values)) <= _PLAIN_NUMBERS and len(values) > positions[-1]:
                cells.append([values[p] for p in positions])  # the common case: every cell a JSON number
                continue
            picked = [values[p] if p < len(values) else None for p in positions]
            cells.append([float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan
                          for v in picked])  # fmt: skip
        return np.array(cells, dtype=np.float64).reshape(len(rows), len(positions))

    def bins(self, matrix: np.ndarray) -> np.ndarray:
        """Bin index per cell (``len(edges) + 1`` bins per feature; NaN goes to the last bin).

        The same as ``np.searchsorted(edges, x, side="left")`` feature by feature (the number
        of edges below ``x``), for every feature at once: edges padded with +inf never count.
        """
        below = (matrix[:, :, None] > self.edge_table[None, :, :]).sum(axis=2)
        return np.where(np.isnan(matrix), self.edge_counts[None, :], below).astype(np.int16)

    def out_of_range(self, matrix: np.ndarray) -> np.ndarray:
        """Per row: the share of its features outside the training minimum..maximum."""
        low = np.array([f.low for f in self.features])
        high = np.array([f.high for f in self.features])
        with np.errstate(invalid="ignore"):
            outside = (matrix < low) | (matrix > high) | np.isnan(matrix)
        return np.asarray(outside.mean(axis=1), dtype=np.float64)


def feature_bins(name: str, info: dict[str, Any]) -> FeatureBins | None:
    """Bins of one numeric profile column (None when it has no quantiles)."""
    quantiles = info.get("quantiles")
    if not isinstance(quantiles, dict) or any(quantiles.get(q) is None for q in (*_INTERIOR, "0.0", "1.0")):
        return None
    edges: list[float] = []
    cdf: list[float] = []
    for q in _INTERIOR:
        value = float(quantiles[q])
        if edges and value <= edges[-1]:
            cdf[-1] = float(q)  # a repeated value: the CDF at it is the higher quantile
            continue
        edges.append(value)
        cdf.append(float(q))
    shares = np.diff(np.array([0.0, *cdf, 1.0]))
    return FeatureBins(name, np.array(edges), shares, float(quantiles["0.0"]), float(quantiles["1.0"]))


def build_reference(model_row: dict[str, Any], dataset: dict[str, Any]) -> ModelReference | None:
    """The reference of a model version from its row and its training dataset (None: nothing to compare)."""
    profile = dataset["profile"]
    columns: dict[str, Any] = profile.get("columns") or {}
    signature = json.loads(model_row["input_signature"]) if model_row.get("input_signature") else {}
    names = [str(f["name"]) for f in signature.get("features", [])]
    label = dataset.get("label") or next((c for c in ("target", "label", "y") if c in columns and c not in names), None)
    numeric = [c for c, info in columns.items() if c != label and isinstance(info.get("quantiles"), dict)]
    if not set(names) & set(numeric):  # generic tensor names: the training columns by position
        names = numeric if not names or len(names) == len(numeric) else names
    features, positions = [], []
    for pos, name in enumerate(names):
        bins = feature_bins(name, columns.get(name) or {})
        if bins is not None:
            features.append(bins)
            positions.append(pos)
    if not features:
        return None
    return ModelReference(
        model=f"{model_row['name']}:{model_row['version']}", dataset=f"{dataset['name']}:{dataset['version']}",
        features=tuple(features), positions=tuple(positions), names=tuple(names),
        class_rates=_class_rates(columns.get(label) if label else None),
    )  # fmt: skip


def _class_rates(info: dict[str, Any] | None) -> dict[str, float]:
    if not info:
        return {}
    freqs = info.get("frequencies")
    if isinstance(freqs, dict):
        return {str(k): float(v) for k, v in freqs.items()}
    quantiles, mean = info.get("quantiles") or {}, info.get("mean")
    if quantiles.get("0.0") == 0.0 and quantiles.get("1.0") == 1.0 and isinstance(mean, float):  # a 0/1 label
        return {"0": 1.0 - mean, "1": mean}
    return {}


class ReferenceBook:
    """References per model version, loaded once (a missing or unusable one is remembered as None)."""

    def __init__(self, load: Callable[[str, int], ModelReference | None]) -> None:
        self._load = load
        self._cache: dict[tuple[str, int], ModelReference | None] = {}

    def get(self, name: str, version: int) -> ModelReference | None:
        key = (name, version)
        if key not in self._cache:
            self._cache[key] = self._load(name, version)
        return self._cache[key]

    @classmethod
    def of_workspace(cls, ws: Workspace) -> ReferenceBook:
        """References read from the workspace's registry (checked rows only)."""

        def load(name: str, version: int) -> ModelReference | None:
            try:
                row = get_version(ws, name, version)
                check_row(ws, row)
                refs = json.loads(row["lineage"]).get("datasets") or []
                if not refs:
                    return None
                dataset = get_dataset(ws, str(refs[0]["name"]), int(refs[0]["version"]))
                reference = build_reference(row, dataset)
            except (MlwardenError, KeyError, ValueError, TypeError) as exc:
                log.warning("watch_reference_unavailable", model=f"{name}:{version}", error=str(exc)[:200])
                return None
            return None if reference is None else replace(reference, shape=_training_shape(ws, dataset, reference))

        return cls(load)


MAX_SHAPE_ROWS = 20_000
"""Training rows a reference's shape is fitted on: every n-th of the first ``MAX_SCAN_ROWS``."""
MAX_SCAN_ROWS = 500_000
"""Rows read at most from the training file (bounds the watcher's memory: only the profiled numeric columns)."""


def _training_shape(ws: Workspace, dataset: dict[str, Any], reference: ModelReference) -> TrainingShape | None:
    """The shape of the training rows' profiled features, read from the dataset's verified file (None: unreadable).

    Only the exception's type is logged: a cast error's message may quote a cell of the training data.
    """
    import polars as pl

    try:
        step = max(1, min(int(dataset.get("rows") or 0), MAX_SCAN_ROWS) // MAX_SHAPE_ROWS + 1)
        names = [f.name for f in reference.features]
        frame = scan(dataset_file(ws, dataset), str(dataset["format"])).head(MAX_SCAN_ROWS).select(
            [pl.col(n).cast(pl.Float64) for n in names]).gather_every(step).collect()  # fmt: skip
        return fit_shape(frame.to_numpy())
    except (MlwardenError, KeyError, ValueError, TypeError, pl.exceptions.PolarsError, OSError) as exc:
        log.warning("watch_training_shape_unavailable", dataset=reference.dataset, error=type(exc).__name__)
        return None
