"""Gate ``performance``: metrics computed on registered evaluation data, thresholds, and no regression."""

from __future__ import annotations

from typing import Any

from mlwarden.errors import MlwardenError
from mlwarden.gates.interface import ERROR, FAIL, PASS, GateContext, GateResult
from mlwarden.gates.scoring import LOWER_IS_BETTER, metric, score


class PerformanceGate:
    name = "performance"

    def run(self, ctx: GateContext, config: dict[str, Any]) -> GateResult:
        bounds: dict[str, dict[str, float]] = dict(config.get("metrics") or {"accuracy": {"min": 0.0}})
        max_regression: dict[str, float] = dict(config.get("max_regression") or {})
        thresholds = {"metrics": bounds, "max_regression": max_regression}
        try:
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
        for name, bound in bounds.items():
            value = measured[name]
            if "min" in bound and value < float(bound["min"]):
                failures.append(f"{name} {value:.4f} is below the minimum {float(bound['min']):.4f}")
            if "max" in bound and value > float(bound["max"]):
                failures.append(f"{name} {value:.4f} is above the maximum {float(bound['max']):.4f}")
        for name, allowed in max_regression.items():
            if name not in baseline:
                continue
            drop = (measured[name] - baseline[name]) if name in LOWER_IS_BETTER else (baseline[name] - measured[name])
            if drop > float(allowed):
                failures.append(
                    f"{name} regresses by {drop:.4f} against production ({baseline[name]:.4f} → {measured[name]:.4f}); "
                    f"at most {float(allowed):.4f} is allowed"
                )
        details = {"production": baseline, "production_version": ctx.production.version if ctx.production else None}
        if ctx.production is not None:
            evidence["production_artifact"] = ctx.production.sha256
        if failures:
            return GateResult(self.name, FAIL, "; ".join(failures), measured, thresholds, evidence, details)
        summary = ", ".join(f"{k} {v:.4f}" for k, v in sorted(measured.items()))
        return GateResult(self.name, PASS, summary, measured, thresholds, evidence, details)
