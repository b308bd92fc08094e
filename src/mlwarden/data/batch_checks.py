"""Batch files that cannot be screened honestly: a column named twice, NaN or infinite numbers.

Polars renames a repeated CSV column (``f0``, ``f0_duplicated_0``), so screening would judge
one copy while the stored file carries both; NaN and infinity break every statistic the
screens compute. Both are refused before any screening, naming the column.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import polars as pl

from mlwarden.errors import ValidationError

_HEADER_BYTES = 1 << 20


def check_header(path: Path, fmt: str) -> None:
    """Refuse a CSV whose header names a column more than once."""
    if fmt != "csv":
        return
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        try:
            header = next(csv.reader(iter(lambda: handle.readline(_HEADER_BYTES), "")), [])
        except csv.Error as exc:
            raise ValidationError(
                f"batch file {path.name}: the header cannot be parsed: {exc}", field="header"
            ) from exc
    repeated = [name for name, count in Counter(header).items() if count > 1]
    if repeated:
        shown = ", ".join(repr(n) for n in repeated[:10])
        raise ValidationError(f"batch file {path.name} names column(s) {shown} more than once", field=repeated[0])


def check_finite(frame: pl.DataFrame) -> None:
    """Refuse NaN or infinite values in a floating-point column, naming the column and the first row."""
    floats = [name for name, dtype in frame.schema.items() if dtype.is_float()]
    if not floats:
        return
    bad = frame.select(pl.col(floats).is_finite().not_().fill_null(value=False).any())
    for name in floats:
        if bad.get_column(name)[0]:
            row = int(frame.get_column(name).is_finite().not_().fill_null(value=False).arg_max() or 0)
            value = frame.get_column(name)[row]
            raise ValidationError(
                f"batch column {name!r} holds {value} at row {row}: numbers must be finite "
                "(NaN and infinity are refused)",
                field=name,
            )
