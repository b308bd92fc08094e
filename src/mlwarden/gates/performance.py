"""Gate ``performance``: metrics computed on registered evaluation data, thresholds, and no regression."""

from __future__ import annotations

from typing import Any

from mlwarden.errors import InvalidInput, MlwardenError
from mlwarden.gates.figures import finite
from mlwarden.gates.interface import ERROR, FAIL, PASS, GateContext, GateResult
from mlwarden.gates.scoring import LOWER_IS_BETTER, metric, score


class PerformanceGate:
    name = "performance"

    def run(self, ctx: GateContext, config: dict[str, Any]) -> GateResult:
        bounds: dict[str, dict[str, float]] = dict(config.get("metrics") or {"accuracy": {"min": 0.0}})
        max_regression: dict[str, float] = dict(config.get("max_regression") or {})
        thresholds = {"metrics": bounds, "max_regression": max_regression}
        try:
            limits = _limits(bounds, max_regression)
            scored = score(ctx.candidate, ctx, config)
            measured = {name: round(metric(name, scored), 6) for name in {*bounds, *max_regression}}
            baseline: dict[str, float] = {}
            if ctx.production is not None:  # the comparison is shown in the report even without a regression limit
                prod = score(ctx.production, ctx, config)
                baseline = {name: round(metric(name, prod), 6) for name in measured}
        except MlwardenError as exc:
            return GateResult(self.name, ERROR, f"cannot evaluate: {exc.message}", thresholds=thresholds)
        evidence = {"evaluation": ctx.evaluation.sha256 if ctx.evaluation else "", "artifact": ctx.candidate.sha256}
        failures = []
        for (name, side), limit in limits.items():
            value = measured[name]
            if side == "min" and value < limit:
                failures.append(f"{name} {value:.4f} is below the minimum {limit:.4f}")
            if side == "max" and value > limit:
                failures.append(f"{name} {value:.4f} is above the maximum {limit:.4f}")
            if side == "max_regression" and name in baseline:
                drop = (value - baseline[name]) if name in LOWER_IS_BETTER else (baseline[name] - value)
                if drop > limit:
                    failures.append(
                        f"{name} regresses by {drop:.4f} against production ({baseline[name]:.4f} → {value:.4f}); "
                        f"at most {limit:.4f} is allowed"
                    )
        details = {"production": baseline, "production_version": ctx.production.version if ctx.production else None}
        if ctx.production is not None:
            evidence["production_artifact"] = ctx.production.sha256
        if failures:
            return GateResult(self.name, FAIL, "; ".join(failures), measured, thresholds, evidence, details)
        summary = ", ".join(f"{k} {v:.4f}" for k, v in sorted(measured.items()))
        return GateResult(self.name, PASS, summary, measured, thresholds, evidence, details)


def _limits(bounds: dict[str, Any], max_regression: dict[str, Any]) -> dict[tuple[str, str], float]:
    """Every threshold as a finite number, keyed by (metric, min|max|max_regression); else InvalidInput."""
    limits: dict[tuple[str, str], float] = {}
    for name, bound in bounds.items():
        if not isinstance(bound, dict) or not bound or set(bound) - {"min", "max"}:
            raise InvalidInput(f"performance bound for {name} must be {{min: X}} and/or {{max: Y}}, got {bound!r}")
        for side in ("min", "max"):
            if side in bound:
                limits[(name, side)] = finite(f"threshold {name}.{side}", bound[side])
    for name, allowed in max_regression.items():
        limits[(name, "max_regression")] = finite(f"threshold max_regression.{name}", allowed)
    return limits
