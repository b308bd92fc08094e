"""Screening benchmark: a 100,000-row batch through mlwarden's real ingest path against PyOD ECOD alone.

A reference of labelled rows (``make_classification``: numeric features, three classes, a
little label noise) is registered with a contract in a fresh workspace; 100,000-row batches
from the same source are ingested with ``mlwarden.data.ingest.ingest`` (read, contract,
drift, outliers, label flips, triggers, duplicates, store, ledger, new version). The first
ingest fits the reference's detectors (``screen_seconds_100k_cold``); the next ones find
them in the workspace (``screen_seconds_100k``, the median: the steady state). The baseline,
in the same run on the same rows: PyOD ECOD fitted on the reference and scoring the batch
(``ecod_seconds_100k``, the median over the steady batches, each timed right after its
ingest), what an outlier-only screen does. ``ratio`` = screen / ECOD, in
wall-clock seconds; the ``*_cpu_*`` keys give the process's CPU seconds (all its threads),
steadier than wall time on a shared machine.

Usage: python bench/screening.py [--quick] [--reference-rows N] [--features N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

BATCH_ROWS = 100_000


def _rows(total: int, features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=total, n_features=features, n_informative=max(2, features // 2), n_redundant=2,
        n_classes=3, flip_y=0.01, class_sep=1.5, random_state=seed,
    )  # fmt: skip
    return x, y


def _frame(x: np.ndarray, y: np.ndarray) -> pl.DataFrame:
    columns = {f"f{i}": x[:, i] for i in range(x.shape[1])}
    return pl.DataFrame(columns).with_columns(pl.Series("target", y.astype(np.int64)))


def _ecod_seconds(ref_x: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    from pyod.models.ecod import ECOD

    ECOD().fit(ref_x[:500]).decision_function(x[:500])  # warm: first calls pay for lazy imports and allocation
    start, cpu = time.perf_counter(), time.process_time()
    detector = ECOD().fit(ref_x)
    threshold = float(np.quantile(detector.decision_scores_, 0.99))
    flagged = detector.decision_function(x) > threshold
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"ecod: {flagged.mean():.4f} of rows above the threshold", file=sys.stderr)
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one steady-state ingest instead of three")
    parser.add_argument("--reference-rows", type=int, default=20_000)
    parser.add_argument("--features", type=int, default=20)
    args = parser.parse_args()
    from mlwarden.config import Settings, WorkspaceOptions
    from mlwarden.data.ingest import ingest
    from mlwarden.registry.dataset_versions import register_dataset
    from mlwarden.workspace import init_workspace, open_workspace

    steady_runs = 1 if args.quick else 3
    x, y = _rows(args.reference_rows + BATCH_ROWS * (1 + steady_runs), args.features, seed=11)
    ref_x, ref_y = x[: args.reference_rows], y[: args.reference_rows]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mlwarden-bench-screen-") as tmp:
        folder = Path(tmp)
        reference = folder / "reference.csv"
        _frame(ref_x, ref_y).write_csv(reference)
        contract = folder / "contract.yaml"
        contract.write_text("columns:\n  target: {type: int, allowed: [0, 1, 2], nullable: false}\n")
        batches = []
        for i in range(1 + steady_runs):
            lo = args.reference_rows + i * BATCH_ROWS
            path = folder / f"batch{i}.csv"
            _frame(x[lo : lo + BATCH_ROWS], y[lo : lo + BATCH_ROWS]).write_csv(path)
            batches.append(path)
        options = WorkspaceOptions.from_settings(Settings(database_url=None), folder / "ws")
        init_workspace(options)
        ws = open_workspace(options)
        try:
            register_dataset(ws, name="bench", path=reference, principal="bench", label="target", contract=contract)
            seconds, cpu, ecod, ecod_cpu = [], [], [], []
            for i, path in enumerate(batches):
                start, started_cpu = time.perf_counter(), time.process_time()
                outcome = ingest(ws, "bench", path, "bench")
                seconds.append(time.perf_counter() - start)
                cpu.append(time.process_time() - started_cpu)
                if i:  # the baseline on the same rows, right after: both see the same machine load
                    lo = args.reference_rows + i * BATCH_ROWS
                    wall, used = _ecod_seconds(ref_x, x[lo : lo + BATCH_ROWS])
                    ecod.append(wall)
                    ecod_cpu.append(used)
                print(f"{path.name}: {outcome['status']} {outcome['reasons']} {seconds[-1]:.2f}s", file=sys.stderr)
                results.setdefault("statuses", []).append(outcome["status"])
        finally:
            ws.close()
    steady, steady_cpu = statistics.median(seconds[1:]), statistics.median(cpu[1:])
    base, base_cpu = statistics.median(ecod), statistics.median(ecod_cpu)
    results = {
        "screen_seconds_100k": round(steady, 3),
        "screen_seconds_100k_cold": round(seconds[0], 3),
        "ecod_seconds_100k": round(base, 3),
        "ratio": round(steady / base, 3),
        "ratio_cold": round(seconds[0] / base, 3),
        "screen_cpu_seconds_100k": round(steady_cpu, 3),
        "ecod_cpu_seconds_100k": round(base_cpu, 3),
        "ratio_cpu": round(steady_cpu / base_cpu, 3),
        "steady_runs_seconds": [round(s, 3) for s in seconds[1:]],
        "ecod_runs_seconds": [round(s, 3) for s in ecod],
        "statuses": results["statuses"],
        "reference_rows": args.reference_rows,
        "features": args.features,
        "batch_rows": BATCH_ROWS,
        "quick": args.quick,
    }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
