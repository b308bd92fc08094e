"""The ML attack suites against the demo model behind a live gateway (uvicorn on loopback, in this process).

    python bench/redteam_attacks.py [--queries 10000] [--seconds 30]

Prints one JSON object:

- ``extraction``: surrogate fidelity after 500, 2,000 and 10,000 answered queries (100 rows per
  request), with the rate limit off, at its default (100 requests/s, bursts of 200) and tight
  (2 requests/s, bursts of 5), each run bounded by ``--seconds``; a count the attack did not
  reach reports what it had when it stopped (``queries``, ``stopped_by``).
- ``baseline_true_labels``: the same surrogate trained on the same number of *true-label*
  training rows (what an attacker holding the data would get; the demo has 426, so larger
  counts use all of them: ``rows``). Both are judged on the same held-out rows, never queried.
- ``suites``: seconds, queries and headline numbers of the three registered suites at their
  default budget (2,000 queries, 60 s each) and the default rate limit.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.redteam.extraction import (
    JUDGE_ROWS_PER_REQUEST,
    ExtractionOptions,
    fidelity,
    run_extraction,
    train_surrogate,
)
from mlwarden.redteam.feature_space import FeatureSpace
from mlwarden.redteam.home import serving
from mlwarden.redteam.oracle import QueryBudget, TargetOracle
from mlwarden.redteam.suites import FeatureRange, LabelledRows, SuiteOptions, load_suites
from mlwarden.redteam.target import Target, Tokens
from served_model import served_workspace

COUNTS = (500, 2000, 10_000)
LIMITS = {"off": (0.0, 200.0), "default": (100.0, 200.0), "tight": (2.0, 5.0)}
SEED_ROWS = 40
"""Held-out rows the attacker holds (its queries are drawn around them); the rest judge fidelity."""


def _csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)
    return data[:, :-1], data[:, -1].astype(np.int64)


def _workspace(root: Path) -> tuple[WorkspaceOptions, str, Path, Path]:
    served = served_workspace(root, None, trees=20)  # the demo's model: 20 trees of depth 6
    return served.options, served.token, served.sample.train_csv, served.sample.eval_csv


def _serving(options: WorkspaceOptions, rate: float, burst: float) -> AbstractContextManager[str]:
    return serving(options, Settings(database_url=None, rate_limit=rate, rate_burst=burst, gc_freeze=False))


def _at(curve: list[dict[str, Any]], count: int, stopped: str | None) -> dict[str, Any]:
    reached = [p for p in curve if p["queries"] <= count]
    point: dict[str, Any] = reached[-1] if reached else {"queries": 0, "fidelity": None}
    out: dict[str, Any] = {"fidelity": point["fidelity"], "queries": int(point["queries"])}
    if point["queries"] < count:
        out["stopped_by"] = stopped
    return out


def _extraction(url: str, token: str, seeds: np.ndarray, judge_rows: np.ndarray, space: FeatureSpace,
                queries: int, seconds: float) -> dict[str, Any]:  # fmt: skip
    target = Target(base_url=url, model="bc", tokens=Tokens(inference=token), budget=queries + len(judge_rows))
    budget = QueryBudget.of(queries + len(judge_rows), seconds)
    started = time.monotonic()
    result = run_extraction(TargetOracle(target, budget), seeds=seeds, holdout=judge_rows, space=space,
                            judge=TargetOracle(target, budget, rows_per_request=JUDGE_ROWS_PER_REQUEST),
                            options=ExtractionOptions(queries=queries, checkpoints=COUNTS))  # fmt: skip
    target.close()
    curve, stopped = result.chart(), result.metrics()["stopped_by"]
    return {
        **{str(n): _at(curve, n, stopped) for n in COUNTS if n <= queries},
        "requests": result.requests, "rate_limited_answers": result.rate_limited,
        "chance_fidelity": round(result.chance_fidelity, 4), "seconds": round(time.monotonic() - started, 2),
    }  # fmt: skip


def _baseline(train: tuple[np.ndarray, np.ndarray], judge_rows: np.ndarray, judge_labels: np.ndarray,
              queries: int) -> dict[str, Any]:  # fmt: skip
    """Surrogates trained on true labels of the training rows (the target's own data), judged the same way."""
    out = {}
    for count in (n for n in COUNTS if n <= queries):
        rows = min(count, len(train[0]))
        surrogate = train_surrogate(train[0][:rows], train[1][:rows], trees=ExtractionOptions().trees, seed=0)
        out[str(count)] = {"fidelity": round(fidelity(surrogate, judge_rows, judge_labels), 4), "rows": rows}
    return out


def _suites(url: str, token: str, train: tuple[np.ndarray, np.ndarray], held: tuple[np.ndarray, np.ndarray]
            ) -> dict[str, Any]:  # fmt: skip
    names = [f"x{i}" for i in range(train[0].shape[1])]

    def rows(x: np.ndarray, y: np.ndarray) -> LabelledRows:
        return LabelledRows([dict(zip(names, map(float, r), strict=True)) for r in x], [int(v) for v in y])

    options = SuiteOptions(features=tuple(FeatureRange(n) for n in names), reference=rows(*train), holdout=rows(*held))
    target = Target(base_url=url, model="bc", tokens=Tokens(inference=token), budget=100_000)
    out: dict[str, Any] = {}
    for name in ("extraction", "evasion", "membership"):
        started = time.monotonic()
        result = load_suites()[name](target, options)
        out[name] = {
            "seconds": round(time.monotonic() - started, 2), "queries": result.queries,
            "findings": {f.id: f.severity.value for f in result.findings}, "metrics": result.metrics,
        }  # fmt: skip
    target.close()
    out["seconds_total"] = round(sum(v["seconds"] for v in out.values()), 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=COUNTS[-1], help="largest query count (default 10000)")
    parser.add_argument("--seconds", type=float, default=30.0, help="time bound of each extraction run")
    args = parser.parse_args()
    print(json.dumps(measure(args.queries, args.seconds), indent=1))


def measure(queries: int = COUNTS[-1], seconds: float = 30.0) -> dict[str, Any]:
    """Extraction fidelity at each query count and rate limit, the true-label baseline, and the three suites."""
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory(prefix="mlwarden-bench-redteam-") as tmp:
        options, token, train_csv, eval_csv = _workspace(Path(tmp))
        train, held = _csv(train_csv), _csv(eval_csv)
        seeds, judge_rows = held[0][:SEED_ROWS], held[0][SEED_ROWS:]
        space = FeatureSpace.of_rows(np.concatenate([train[0], held[0]]))
        with _serving(options, *LIMITS["off"]) as url:
            judge_labels = _judge_labels(url, token, judge_rows)
        extraction = {}
        for label, (rate, burst) in LIMITS.items():
            with _serving(options, rate, burst) as url:
                extraction[label] = _extraction(url, token, seeds, judge_rows, space, queries, seconds)
        with _serving(options, *LIMITS["default"]) as url:
            suites = _suites(url, token, train, held)
    report = {
        "model": "demo breast-cancer random forest (20 trees, depth 6), ONNX behind the gateway",
        "cpus": os.cpu_count(),
        "rows_per_request": 100,
        "seconds_bound_per_extraction": seconds,
        "limits": {k: {"rate_limit": r, "rate_burst": b} for k, (r, b) in LIMITS.items()},
        "extraction": extraction,
        "baseline_true_labels": _baseline(train, judge_rows, judge_labels, queries),
        "suites": suites,
    }
    return report


def _judge_labels(url: str, token: str, rows: np.ndarray) -> np.ndarray:
    target = Target(base_url=url, model="bc", tokens=Tokens(inference=token), budget=len(rows))
    labels = (
        TargetOracle(target, QueryBudget.of(len(rows), 30), rows_per_request=JUDGE_ROWS_PER_REQUEST)
        .predict(rows)
        .labels
    )
    target.close()
    return labels


if __name__ == "__main__":
    main()
