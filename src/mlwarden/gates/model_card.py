"""Gate ``model_card``: required metadata and sections present and non-empty; named datasets registered."""

from __future__ import annotations

from typing import Any

from mlwarden.gates.interface import ERROR, FAIL, PASS, GateContext, GateResult

DEFAULT_METADATA = ("license", "datasets", "metrics")
DEFAULT_SECTIONS = ("intended_use", "limitations", "training_data", "evaluation", "fairness", "owners")


class ModelCardGate:
    name = "model_card"

    def run(self, ctx: GateContext, config: dict[str, Any]) -> GateResult:
        card = ctx.candidate.card
        required_meta = list(config.get("required_metadata", DEFAULT_METADATA))
        required_sections = list(config.get("required_sections", DEFAULT_SECTIONS))
        thresholds = {"required_metadata": required_meta, "required_sections": required_sections}
        if card is None:
            return GateResult(self.name, ERROR, "no model card was given", thresholds=thresholds)
        missing_meta = [k for k in required_meta if card.metadata.get(k) in (None, "", [], {})]
        missing_sections = [s for s in required_sections if not card.section(s).strip()]
        problems = []
        if missing_meta:
            problems.append("missing front-matter keys: " + ", ".join(missing_meta))
        if missing_sections:
            problems.append("missing or empty sections: " + ", ".join(s.replace("_", " ") for s in missing_sections))
        unknown: list[str] = []
        if ctx.known_datasets is not None:
            named = card.metadata.get("datasets") or []
            for item in named if isinstance(named, list) else [named]:
                if str(item) not in ctx.known_datasets:
                    unknown.append(str(item))
            if unknown:
                problems.append("card names datasets not in the registry: " + ", ".join(unknown))
        measured = {"missing_metadata": missing_meta, "missing_sections": missing_sections, "unknown_datasets": unknown}
        evidence = {"card": card.sha256}
        if problems:
            return GateResult(self.name, FAIL, "; ".join(problems), measured, thresholds, evidence)
        return GateResult(self.name, PASS, "card complete", measured, thresholds, evidence)
