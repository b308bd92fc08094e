"""Poisoning benchmark: attacks injected into batches of scikit-learn's bundled datasets.

For each dataset (breast cancer, wine, digits), 60% is the reference and batches are drawn
from the rest. Attacks: 5% label flips, 2% backdoor-trigger rows (a feature set to a value
never seen in the reference, labelled with one class), 5% out-of-distribution rows, and a
duplicate flood (20% repeats). mlwarden's screening is compared with a baseline that uses a
PyOD outlier detector (ECOD) alone. Prints one JSON object: per attack whether the batch was
quarantined (share of trials), row recall, precision and AUROC; and the share of clean
batches wrongly quarantined.

Usage: python bench/poisoning.py [--quick] [--trials N]
(``--quick``: 2 trials per dataset instead of 5.)
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
import polars as pl
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.metrics import roc_auc_score

from mlwarden.data.screen import OUTLIER_SHARE_LIMIT, screen

ATTACKS = ("label_flips", "backdoor_trigger", "out_of_distribution", "duplicate_flood")


def _frame(x: np.ndarray, y: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({f"f{i}": x[:, i].astype(np.float64) for i in range(x.shape[1])}).with_columns(
        pl.Series("target", y)
    )


def _attack(
    kind: str, x: np.ndarray, y: np.ndarray, ref_x: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y = x.copy(), y.copy()
    n = len(y)
    classes = np.unique(y)
    if kind == "label_flips":
        rows = rng.choice(n, max(1, int(0.05 * n)), replace=False)
        y[rows] = [rng.choice(classes[classes != v]) for v in y[rows]]
    elif kind == "backdoor_trigger":
        rows = rng.choice(n, max(5, int(0.02 * n)), replace=False)
        column = int(rng.integers(x.shape[1]))
        x[rows, column] = float(np.max(ref_x[:, column]) * 3 + 7)
        y[rows] = classes[0]
    elif kind == "out_of_distribution":
        rows = rng.choice(n, max(1, int(0.05 * n)), replace=False)
        mean, std = ref_x.mean(axis=0), ref_x.std(axis=0) + 1e-9
        x[rows] = mean + rng.normal(size=(len(rows), x.shape[1])) * std * 6
    else:
        source = rng.choice(n, 5, replace=False)
        copies = rng.choice(source, int(0.2 * n))
        rows = np.arange(n, n + len(copies))
        x, y = np.vstack([x, x[copies]]), np.concatenate([y, y[copies]])
    return x, y, np.sort(rows)


def _row_scores(kind: str, report: Any, n: int) -> np.ndarray:
    flagged = np.zeros(n)
    flagged[report.flagged_rows] = 1.0
    outlier = np.asarray(report.measured.get("outlier_scores", np.zeros(n)), dtype=float)
    outlier = (outlier - outlier.min()) / (np.ptp(outlier) + 1e-12)
    if kind == "label_flips":
        agreement = np.asarray(report.measured.get("label_agreement", np.ones(n)), dtype=float)
        return 1 - agreement + 0.01 * flagged
    return flagged + 0.1 * outlier


def _baseline(ref_x: np.ndarray, x: np.ndarray) -> tuple[bool, np.ndarray, np.ndarray]:
    from pyod.models.ecod import ECOD

    detector = ECOD().fit(ref_x)
    threshold = np.quantile(detector.decision_scores_, 0.99)
    scores = detector.decision_function(x)
    flagged = scores > threshold
    return bool(flagged.mean() > OUTLIER_SHARE_LIMIT), flagged, scores


def _summary(values: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(float(np.mean([v[k] for v in values])), 4) for k in values[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="2 trials per dataset")
    args = parser.parse_args()
    if args.quick:
        args.trials = 2
    rng = np.random.default_rng(2026)
    ours: dict[str, list[dict[str, float]]] = {a: [] for a in ATTACKS}
    base: dict[str, list[dict[str, float]]] = {a: [] for a in ATTACKS}
    clean_ours: list[bool] = []
    clean_base: list[bool] = []
    for loader in (load_breast_cancer, load_wine, load_digits):
        data = loader()
        order = rng.permutation(len(data.target))
        cut = int(0.6 * len(order))
        ref_x, ref_y = data.data[order[:cut]], data.target[order[:cut]]
        pool_x, pool_y = data.data[order[cut:]], data.target[order[cut:]]
        reference = _frame(ref_x, ref_y)
        size = min(args.batch, len(pool_y))
        for _ in range(args.trials):
            pick = rng.choice(len(pool_y), size, replace=False)
            bx, by = pool_x[pick], pool_y[pick]
            clean_ours.append(bool(screen(_frame(bx, by), reference, label="target").reasons))
            clean_base.append(_baseline(ref_x, bx)[0])
            for kind in ATTACKS:
                x, y, poisoned = _attack(kind, bx, by, ref_x, rng)
                truth = np.zeros(len(y))
                truth[poisoned] = 1
                report = screen(_frame(x, y), reference, label="target")
                flagged = np.zeros(len(y), dtype=bool)
                flagged[report.flagged_rows] = True
                scores = _row_scores(kind, report, len(y))
                ours[kind].append(
                    {
                        "batch_quarantined": float(bool(report.reasons)),
                        "recall": float(flagged[poisoned].mean()),
                        "precision": float(flagged[poisoned].sum() / max(flagged.sum(), 1)),
                        "auroc": float(roc_auc_score(truth, scores)),
                    }
                )
                quarantined, base_flags, base_scores = _baseline(ref_x, x)
                base[kind].append(
                    {
                        "batch_quarantined": float(quarantined),
                        "recall": float(base_flags[poisoned].mean()),
                        "precision": float(base_flags[poisoned].sum() / max(base_flags.sum(), 1)),
                        "auroc": float(roc_auc_score(truth, base_scores)),
                    }
                )
    print(
        json.dumps(
            {
                "attacks": {k: _summary(v) for k, v in ours.items()},
                "clean_batches_quarantined_share": round(float(np.mean(clean_ours)), 4),
                "baseline_pyod_ecod_only": {
                    "attacks": {k: _summary(v) for k, v in base.items()},
                    "clean_batches_quarantined_share": round(float(np.mean(clean_base)), 4),
                },
                "datasets": ["breast_cancer", "wine", "digits"],
                "trials_per_dataset": args.trials,
                "batch_rows": args.batch,
            }
        )
    )


if __name__ == "__main__":
    main()
