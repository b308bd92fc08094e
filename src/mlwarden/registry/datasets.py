"""Dataset fingerprints and column profiles (Polars), for drift and poisoning checks later."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from mlwarden.errors import InvalidInput

QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
TOP_CATEGORIES = 50
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def data_format(path: Path) -> str:
    """csv, parquet or jsonl, from the file name."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InvalidInput(f"{path.name}: unsupported dataset format; use .csv, .parquet or .jsonl")
    return fmt


def refuse_binary(path: Path, fmt: str) -> None:
    """A CSV or JSON lines file whose first 4 KiB hold a NUL byte is binary, not data: an input error."""
    if fmt == "parquet":
        return
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}") from exc
    if b"\x00" in head:
        raise InvalidInput(f"{path} is binary, not {fmt}")


def scan(path: Path, fmt: str) -> pl.LazyFrame:
    """A lazy frame over the file (streams; never loads what it does not need)."""
    try:
        if fmt == "csv":
            return pl.scan_csv(path, infer_schema_length=10_000)
        if fmt == "parquet":
            return pl.scan_parquet(path)
        return pl.scan_ndjson(path, infer_schema_length=10_000)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InvalidInput(f"{path.name} cannot be read as {fmt}: {str(exc).splitlines()[0]}") from exc


@dataclass(frozen=True, slots=True)
class DatasetProfile:
    """Row count, schema fingerprint and per-column statistics."""

    rows: int
    schema: list[tuple[str, str]]
    columns: dict[str, dict[str, Any]]

    @property
    def schema_fingerprint(self) -> str:
        """SHA-256 of the ordered (name, type) list."""
        return hashlib.sha256(json.dumps(self.schema).encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "schema": self.schema, "columns": self.columns}


def _finite(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value


def profile(path: Path, fmt: str) -> DatasetProfile:
    """Profile a dataset file: types, null rates, quantiles, category frequencies."""
    try:
        frame = scan(path, fmt).collect()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InvalidInput(f"{path.name} cannot be read as {fmt}: {str(exc).splitlines()[0]}") from exc
    return profile_frame(frame)


def profile_frame(frame: pl.DataFrame) -> DatasetProfile:
    """:func:`profile` of a table already read."""
    rows = frame.height
    schema = [(name, str(dtype)) for name, dtype in frame.schema.items()]
    columns: dict[str, dict[str, Any]] = {}
    for name, dtype in frame.schema.items():
        series = frame.get_column(name)
        nulls = series.null_count()
        info: dict[str, Any] = {"dtype": str(dtype), "null_rate": (nulls / rows) if rows else 0.0}
        if dtype.is_numeric() and rows > nulls:
            clean = series.drop_nulls().cast(pl.Float64)
            ordered = clean.sort()  # sorted once: each quantile is then a lookup, not a selection over the column
            info["quantiles"] = {str(q): _finite(ordered.quantile(q, interpolation="linear")) for q in QUANTILES}
            info["mean"] = _finite(clean.mean())
            info["std"] = _finite(clean.std())
        elif dtype in (pl.String, pl.Categorical, pl.Boolean) or dtype == pl.Enum:
            counts = series.drop_nulls().cast(pl.String).rename("value").value_counts(sort=True, name="n")
            counts = counts.head(TOP_CATEGORIES)
            total = rows - nulls
            info["distinct"] = series.n_unique()
            info["frequencies"] = {str(v): c / total for v, c in counts.iter_rows()} if total else {}
        columns[name] = info
    return DatasetProfile(rows, schema, columns)


@dataclass(frozen=True, slots=True)
class DvcOut:
    """One output of a ``.dvc`` file: its md5 and path."""

    md5: str
    path: str
    size: int | None


def read_dvc(path: Path) -> DvcOut:
    """Read a DVC metadata file (``outs: [{md5, path, size}]``); no DVC remote needed."""
    try:
        meta = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(f"{path.name} is not a readable .dvc file: {exc}") from exc
    outs = meta.get("outs") if isinstance(meta, dict) else None
    if not isinstance(outs, list) or not outs or not isinstance(outs[0], dict):
        raise InvalidInput(f"{path.name} has no 'outs' entry")
    out = outs[0]
    md5, out_path = out.get("md5"), out.get("path")
    if not isinstance(md5, str) or len(md5.removesuffix(".dir")) != 32 or not isinstance(out_path, str):
        raise InvalidInput(f"{path.name}: 'outs' needs an md5 and a path")
    size = out.get("size")
    return DvcOut(md5, out_path, int(size) if isinstance(size, int) else None)
