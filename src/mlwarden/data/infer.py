"""Inferring a starting contract from a dataset: one that the data and batches like it satisfy.

Exact observed minima and maxima make a contract that the next clean batch breaks (a new
sample has new extremes). Ranges are therefore read from robust quantiles and widened:

* numbers: ``[q0.001 - MARGIN * span, q0.999 + MARGIN * span]`` with ``span = q0.999 - q0.001``
  (or the magnitude of the value when the column is constant), then rounded outward to two
  significant digits of the span (whole numbers for ``int`` columns); a column with no negative
  value never allows one (the lower bound stops at 0);
* small category sets become ``allowed`` lists (strings, and integers with few values), only
  when every value was seen at least ``MIN_SEEN`` times: a value seen once or twice says that
  other rare values exist and a new batch may bring one;
* ``nullable`` from the observed nulls; a column with nulls gets ``max_null_rate`` of twice its
  observed rate plus ``NULL_TOLERANCE``;
* text columns holding identifiers (e-mail, phone, card, IBAN, national id, in any of their first
  ``SCANNED_VALUES`` distinct values) are marked ``pii: true`` and their values never listed;
* unique integer or string columns named ``id`` or ``*_id`` are keys (``role: key``,
  ``unique: true``): checked for uniqueness, left out of drift and poisoning screening.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from mlwarden.data.redaction import shown_message
from mlwarden.errors import InvalidInput
from mlwarden.registry.datasets import data_format, scan

LOW_QUANTILE, HIGH_QUANTILE = 0.001, 0.999
MARGIN = 2.5
"""Spans added on each side: held-out splits of heavy-tailed data (breast cancer) need up to ~2.3."""
MAX_CATEGORIES = 20
MAX_INT_CATEGORIES = 10
MIN_SEEN = 3
SCANNED_VALUES = 1000
"""Distinct values of a text column scanned for identifiers when inferring (enough to see what it holds)."""
NULL_TOLERANCE = 0.02
_ID_NAME = re.compile(r"(?i)^(id|.*[_\-. ]id)$")

HEADER = (
    "# inferred by mlwarden data contract infer; review before use\n"
    f"# ranges: [q{LOW_QUANTILE} - {MARGIN:g} x span, q{HIGH_QUANTILE} + {MARGIN:g} x span], span = q{HIGH_QUANTILE}"
    f" - q{LOW_QUANTILE},\n"
    "#   rounded outward to two significant digits of the span; no negative bound when none was seen\n"
    f"# allowed: categories (<= {MAX_CATEGORIES} strings, <= {MAX_INT_CATEGORIES} integers) each seen >= {MIN_SEEN}"
    " times\n"
    f"# nullable: when nulls were seen; max_null_rate = 2 x observed rate + {NULL_TOLERANCE:g}\n"
    "# role: key marks unique id columns (named id or *_id): left out of drift and poisoning screening\n"
)


def _read(path: Path) -> pl.DataFrame:
    if not path.is_file():
        raise InvalidInput(f"data file {path} does not exist")
    if path.stat().st_size == 0:
        raise InvalidInput(f"data file {path} is empty")
    fmt = data_format(path)
    with path.open("rb") as handle:
        if fmt != "parquet" and b"\x00" in handle.read(4096):
            raise InvalidInput(f"data file {path} is binary, not {fmt}")
    try:
        frame = scan(path, fmt).collect()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InvalidInput(f"data file {path} cannot be read as {fmt}: {shown_message(str(exc))}") from exc
    if frame.height == 0 or frame.width == 0:
        raise InvalidInput(f"data file {path} has no rows to infer a contract from")
    return frame


def _type(dtype: pl.DataType) -> str:
    if dtype.is_integer():
        return "int"
    if dtype.is_float():
        return "float"
    if dtype == pl.Boolean:
        return "bool"
    return "string"


def _round_out(value: float, step: float, down: bool) -> float:
    scaled = value / step
    rounded = math.floor(scaled + 1e-9) if down else math.ceil(scaled - 1e-9)
    return float(round(rounded * step, 12))


def _range(series: pl.Series, kind: str) -> tuple[float, float] | None:
    clean = series.drop_nulls().cast(pl.Float64)
    clean = clean.filter(clean.is_finite())
    if not clean.len():
        return None
    low = float(clean.quantile(LOW_QUANTILE, interpolation="linear") or 0.0)
    high = float(clean.quantile(HIGH_QUANTILE, interpolation="linear") or 0.0)
    span = high - low or max(abs(high), 1.0)
    step = 10.0 ** (math.floor(math.log10(span)) - 1)
    if kind == "int":
        step = max(1.0, step)
    lower = _round_out(low - MARGIN * span, step, down=True)
    upper = _round_out(high + MARGIN * span, step, down=False)
    if float(clean.min()) >= 0:  # type: ignore[arg-type]
        lower = max(lower, 0.0)
    return lower, upper


def _categories(series: pl.Series, limit: int) -> list[Any] | None:
    counts = series.drop_nulls().rename("value").value_counts(name="seen")
    if not 0 < counts.height <= limit or int(counts.get_column("seen").min()) < MIN_SEEN:  # type: ignore[arg-type]
        return None
    return sorted(counts.get_column("value").to_list())


def _holds_identifiers(series: pl.Series) -> bool:
    """Whether any of the first ``SCANNED_VALUES`` distinct values holds an e-mail, phone, card, IBAN or national id."""
    from mlwarden.privacy.identifiers import MAX_TEXT, find

    values = series.cast(pl.String).drop_nulls().unique(maintain_order=True).head(SCANNED_VALUES).to_list()
    return any(len(v) > MAX_TEXT or find(v) for v in values)


def _is_key(name: str, series: pl.Series, kind: str) -> bool:
    return (
        kind in ("int", "string")
        and bool(_ID_NAME.match(name))
        and series.null_count() == 0
        and series.n_unique() == series.len()
    )


def _column(name: str, series: pl.Series) -> dict[str, Any]:
    kind = _type(series.dtype)
    spec: dict[str, Any] = {"type": kind}
    nulls = series.null_count()
    spec["nullable"] = bool(nulls)
    if nulls:
        spec["max_null_rate"] = min(1.0, math.ceil((2 * nulls / series.len() + NULL_TOLERANCE) * 100) / 100)
    if _is_key(name, series, kind):
        spec.update(role="key", unique=True)
        return spec
    allowed = None
    if kind == "string" and _holds_identifiers(series):
        spec["pii"] = True  # never list its values: a contract is shown, checked in, and quoted in reports
        return spec
    if kind == "string":
        allowed = _categories(series.cast(pl.String), MAX_CATEGORIES)
    elif kind == "int":
        allowed = _categories(series, MAX_INT_CATEGORIES)
    if allowed is not None:
        spec["allowed"] = [str(v) for v in allowed] if kind == "string" else [int(v) for v in allowed]
    elif kind in ("int", "float"):
        bounds = _range(series, kind)
        if bounds is not None:
            spec["min"], spec["max"] = (int(b) for b in bounds) if kind == "int" else bounds
    return spec


def infer_contract(path: Path) -> str:
    """A starting contract (YAML, with how it was inferred in its comments) for the data in ``path``."""
    frame = _read(path)
    columns = {name: _column(name, frame.get_column(name)) for name in frame.columns}
    doc = {"table": {"rows": {"min": 1}}, "columns": columns}
    return HEADER + yaml.safe_dump(doc, sort_keys=False)
