"""What screening needs from a reference dataset, fitted once: column values, category counts, detectors.

``fit_reference`` reads the reference table; the result holds only numbers, names and counts
(no fitted library objects), so it can be kept as plain arrays and JSON (see
``detector_file``) and screening a batch never reads the reference table again.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import polars as pl

from mlwarden.data.label_judges import LabelJudges
from mlwarden.data.outliers import EcodReference

TEXT_TYPES = (pl.String, pl.Categorical)


@dataclass(frozen=True, slots=True)
class FittedReference:
    """The reference as screening sees it.

    ``numeric`` are the screened number columns (not the label, not key columns);
    ``values[i]`` the sorted non-null values of ``numeric[i]``; ``categories`` each text
    column's value counts; ``outliers`` and ``judges`` the fitted detectors (``judges`` only
    with a label).
    """

    numeric: tuple[str, ...]
    label: str | None
    values: tuple[np.ndarray, ...]
    categories: dict[str, dict[str, int]]
    outliers: EcodReference | None
    judges: LabelJudges | None


def numeric_columns(reference: pl.DataFrame, label: str | None) -> list[str]:
    """The reference's number columns other than the label."""
    return [c for c, t in reference.schema.items() if t.is_numeric() and c != label]


def _counts(column: pl.Series) -> dict[str, int]:
    return {str(v): int(n) for v, n in column.drop_nulls().cast(pl.String).value_counts().iter_rows()}


def fit_reference(reference: pl.DataFrame, *, label: str | None, keys: Collection[str] = ()) -> FittedReference:
    """Fit everything screening compares a batch with; ``keys`` (id columns) are left out."""
    reference = reference.drop(keys, strict=False)
    label = label if label is not None and label in reference.columns else None
    numeric = numeric_columns(reference, label)
    values = tuple(np.sort(reference.get_column(c).drop_nulls().to_numpy().astype(np.float64)) for c in numeric)
    text = [column for column, dtype in reference.schema.items() if dtype in TEXT_TYPES]
    categories = {column: _counts(reference.get_column(column)) for column in text}
    outliers = judges = None
    if numeric:
        ref_x = reference.select(numeric).fill_null(0).to_numpy().astype(np.float64)
        outliers = EcodReference.fit(ref_x)
        if label is not None:
            judges = LabelJudges.fit(ref_x, reference.get_column(label).to_numpy())
    return FittedReference(tuple(numeric), label, values, categories, outliers, judges)
