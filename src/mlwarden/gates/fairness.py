"""Gate ``fairness``: fairlearn MetricFrame per group, demographic parity and equalized odds differences.

Every figure must be a finite number: a NaN or infinite difference, group figure or threshold is
``error`` (which blocks), never compared.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from mlwarden.errors import InvalidInput, MlwardenError
from mlwarden.gates.figures import finite
from mlwarden.gates.interface import ERROR, FAIL, PASS, GateContext, GateResult
from mlwarden.gates.scoring import score


class FairnessGate:
    name = "fairness"

    def run(self, ctx: GateContext, config: dict[str, Any]) -> GateResult:
        sensitive = list(config.get("sensitive") or [])
        thresholds = {
            "max_demographic_parity_difference": config.get("max_demographic_parity_difference", 0.1),
            "max_equalized_odds_difference": config.get("max_equalized_odds_difference", 0.2),
        }
        try:
            max_dp, max_eo = (finite(f"threshold {k}", v) for k, v in thresholds.items())
            if not sensitive:
                raise InvalidInput("the fairness gate needs `sensitive` columns in the policy")
            if ctx.evaluation is None:
                raise InvalidInput("no evaluation dataset")
            missing = [c for c in sensitive if c not in ctx.evaluation.frame.columns]
            if missing:
                raise InvalidInput(f"evaluation data lacks sensitive columns: {', '.join(missing)}")
            scored = score(ctx.candidate, ctx, config)
            figures = _figures(ctx.evaluation.frame, sensitive, scored.y_true, scored.y_pred)
        except MlwardenError as exc:
            return GateResult(self.name, ERROR, f"cannot evaluate: {exc.message}", thresholds=thresholds)
        dp, eo, by_group, counts = figures
        measured = {"demographic_parity_difference": round(dp, 6), "equalized_odds_difference": round(eo, 6)}
        details = {"by_group": by_group, "group_sizes": counts, "sensitive": sensitive}
        evidence = {"evaluation": ctx.evaluation.sha256, "artifact": ctx.candidate.sha256}
        failures = []
        if dp > max_dp:
            failures.append(f"demographic parity difference {dp:.3f} exceeds {max_dp:.3f}")
        if eo > max_eo:
            failures.append(f"equalized odds difference {eo:.3f} exceeds {max_eo:.3f}")
        if failures:
            rates = ", ".join(f"{g}: selection rate {v['selection_rate']:.2f}" for g, v in by_group.items())
            return GateResult(
                self.name, FAIL, "; ".join(failures) + f" ({rates})", measured, thresholds, evidence, details
            )
        return GateResult(self.name, PASS, f"DPD {dp:.3f}, EOD {eo:.3f}", measured, thresholds, evidence, details)


Figures = tuple[float, float, dict[str, dict[str, float]], dict[str, int]]


def _figures(frame: pl.DataFrame, sensitive: list[str], y_true: np.ndarray, y_pred: np.ndarray) -> Figures:
    """DPD, EOD, per-group accuracy and selection rate, group sizes; every figure finite, else InvalidInput."""
    import pandas as pd
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        equalized_odds_difference,
        selection_rate,
    )
    from sklearn.metrics import accuracy_score

    columns = {c: frame.get_column(c).to_numpy() for c in sensitive}
    group_col: Any = (
        pd.Series(columns[sensitive[0]], name=sensitive[0]) if len(sensitive) == 1 else pd.DataFrame(columns)
    )
    try:
        by = MetricFrame(
            metrics={"accuracy": accuracy_score, "selection_rate": selection_rate},
            y_true=y_true,
            y_pred=y_pred,
            sensitive_features=group_col,
        ).by_group
        dp = demographic_parity_difference(y_true, y_pred, sensitive_features=group_col)
        eo = equalized_odds_difference(y_true, y_pred, sensitive_features=group_col)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"fairness figures cannot be computed on the evaluation data: {exc}") from exc
    by_group = {
        str(group): {m: round(finite(f"{m} of group {group}", v), 6) for m, v in row.items()}
        for group, row in by.iterrows()
    }
    counts = (
        {str(k): int(v) for k, v in zip(*np.unique(group_col.astype(str), return_counts=True), strict=True)}
        if len(sensitive) == 1
        else {}
    )
    return (
        finite("demographic_parity_difference", dp),
        finite("equalized_odds_difference", eo),
        by_group,
        counts,
    )
