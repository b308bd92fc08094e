"""Batch ingestion benchmark: a batch naming data subjects (personal cells sealed per row) against a plain batch.

Prints one JSON object. Both cases ingest the same feature rows (contract, screening, stored
file, ledger entry, new dataset version) into datasets with the same reference, alternating,
with the reference's detectors already kept:

* ``baseline_plain_s``: the batch without personal columns (stored as uploaded, nothing sealed);
* ``sealed_s``: the same rows plus a subject column (``--subjects`` distinct subjects) and an
  e-mail column the contract marks ``pii: true``: the clear file is written and stored, every
  row's personal cells sealed under its subject's key of the day, payloads and commitments stored;
* ``sealed_free_text_s``: as ``sealed_s`` plus a text column of distinct values, 5% of them
  holding a phone number (every distinct value is scanned for identifiers, those cells masked);
* ``*_us_per_row``: the same figures per row; ``sealed_overhead``: ``sealed_s / baseline_plain_s``.

Medians of ``--repeats`` runs. Usage: python bench/batch_subjects.py [--quick] [--rows N]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.data.ingest import ingest
from mlwarden.registry.dataset_versions import register_dataset
from mlwarden.workspace import Workspace, init_workspace, open_workspace

FEATURES = 8
CONTRACT = "columns:\n  email: {type: string, pii: true}\n  f0: {type: float}\n"


def _features(rows: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, FEATURES))
    frame = pl.DataFrame({f"f{i}": x[:, i] for i in range(FEATURES)})
    return frame.with_columns(pl.Series("target", (x[:, 0] + x[:, 1] > 0).astype(np.int64)))


def _personal(frame: pl.DataFrame, subjects: int, *, free_text: bool) -> pl.DataFrame:
    n = frame.height
    out = frame.with_columns(
        pl.Series("customer", [f"customer-{i % subjects}" for i in range(n)]),
        pl.Series("email", [f"person{i % subjects}@mail.example" for i in range(n)]),
    )
    if free_text:
        notes = [f"call +44 20 7946 {i % 10000:04d}" if i % 20 == 0 else f"order {i} arrived" for i in range(n)]
        out = out.with_columns(pl.Series("note", notes))
    return out


def _setup(root: Path, reference_rows: int) -> Workspace:
    options = WorkspaceOptions.from_settings(Settings(database_url=None), root / "ws")
    init_workspace(options)
    ws = open_workspace(options)
    reference, contract = root / "reference.csv", root / "contract.yaml"
    _features(reference_rows, 1).write_csv(reference)
    contract.write_text(CONTRACT)
    register_dataset(ws, name="plain", path=reference, principal="bench", label="target")
    register_dataset(ws, name="personal", path=reference, principal="bench", label="target", contract=contract)
    return ws


def _timed(ws: Workspace, dataset: str, path: Path, subject_column: str | None) -> float:
    start = time.perf_counter()
    ingest(ws, dataset, path, "bench", subject_column=subject_column)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 rows, 3 repeats")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--subjects", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    rows, repeats = (2_000, 3) if args.quick else (args.rows, args.repeats)
    with tempfile.TemporaryDirectory(prefix="mlwarden-bench-") as tmp:
        root = Path(tmp)
        ws = _setup(root, 2_000)
        try:
            cases = {
                "baseline_plain": ("plain", _features(rows, 2), None),
                "sealed": ("personal", _personal(_features(rows, 2), args.subjects, free_text=False), "customer"),
                "sealed_free_text": (
                    "personal", _personal(_features(rows, 2), args.subjects, free_text=True), "customer"
                ),
            }  # fmt: skip
            paths = {}
            for name, (_dataset, frame, _column) in cases.items():
                paths[name] = root / f"{name}.csv"
                frame.write_csv(paths[name])
            for name, (dataset, _frame, column) in cases.items():  # warm-up: fits and keeps the detectors
                _timed(ws, dataset, paths[name], column)
            seconds: dict[str, list[float]] = {name: [] for name in cases}
            for _ in range(repeats):  # alternated, so load from other jobs hits every case alike
                for name, (dataset, _frame, column) in cases.items():
                    seconds[name].append(_timed(ws, dataset, paths[name], column))
        finally:
            ws.close()
    result: dict[str, Any] = {"rows": rows, "subjects": args.subjects, "repeats": repeats}
    for name, runs in seconds.items():
        median = statistics.median(runs)
        result[f"{name}_s"] = round(median, 3)
        result[f"{name}_us_per_row"] = round(median / rows * 1e6, 1)
    result["sealed_overhead"] = round(result["sealed_s"] / result["baseline_plain_s"], 2)
    result["python"] = platform.python_version()
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
