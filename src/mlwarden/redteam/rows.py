"""Rows an attacker knows: read from a CSV or Parquet file (the training set, held-out rows), bounded."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import polars as pl

from mlwarden.errors import InvalidInput
from mlwarden.redteam.suites import FeatureRange, LabelledRows

MAX_ROWS = 5_000
"""Rows kept from a file (suites sample from these)."""


def read_frame(path: Path) -> pl.DataFrame:
    """The first :data:`MAX_ROWS` rows of a CSV or Parquet file (a one-line error when it cannot be read)."""
    try:
        with path.open("rb") as handle:
            parquet = handle.read(4) == b"PAR1"
        return (pl.read_parquet(path) if parquet else pl.read_csv(path)).head(MAX_ROWS)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InvalidInput(f"cannot read rows from {path}: {str(exc).splitlines()[0][:200]}") from exc


def stored_rows(path: Path, *, label: str | None) -> LabelledRows:
    """Rows of ``path`` with every column as stored (the label kept in each row, and listed apart)."""
    frame = read_frame(path)
    labels = frame[label].to_list() if label is not None and label in frame.columns else None
    return LabelledRows(frame.to_dicts(), labels)


def read_rows(path: Path, *, label: str | None, features: tuple[FeatureRange, ...] = ()) -> LabelledRows:
    """The first :data:`MAX_ROWS` rows of ``path``: feature columns (the signature's when known) and the label."""
    frame = read_frame(path)
    if label is not None and label not in frame.columns:
        raise InvalidInput(f"{path} has no label column {label!r}; columns: {', '.join(frame.columns[:20])}")
    names = [f.name for f in features] or [c for c in frame.columns if c != label]
    missing = [n for n in names if n not in frame.columns]
    others = [c for c in frame.columns if c != label]
    if missing and label is None and features and len(others) == len(names) + 1:
        label, others = others[-1], others[:-1]  # unnamed label: the last column, as training files put it
    if missing and len(others) == len(names):  # a tensor model's x0, x1...: the file's columns in order
        frame = frame.rename(dict(zip(others, names, strict=True)))
        missing = []
    if missing:
        raise InvalidInput(f"{path} lacks the model's feature column(s) {', '.join(missing[:10])}")
    rows = frame.select(names).to_dicts()
    labels = frame[label].to_list() if label is not None else None
    return LabelledRows(rows, labels)


def ranges_from(rows: LabelledRows, features: tuple[FeatureRange, ...]) -> tuple[FeatureRange, ...]:
    """``features`` with missing bounds filled in from the numeric values seen in ``rows``."""
    names = [f.name for f in features] or (list(rows.rows[0]) if rows.rows else [])
    known = {f.name: f for f in features}
    out = []
    for name in names:
        values = [float(r[name]) for r in rows.rows if _number(r.get(name))]
        base = known.get(name, FeatureRange(name))
        low = base.minimum if base.minimum is not None else (min(values) if values else None)
        high = base.maximum if base.maximum is not None else (max(values) if values else None)
        out.append(FeatureRange(name, base.dtype, low, high))
    return tuple(out)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
