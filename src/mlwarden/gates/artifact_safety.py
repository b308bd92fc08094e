"""Gate ``artifact_safety``: allowed format, clean static scan, hash and registration signature valid.

For skops files every type must be trusted; the details record which types the file needed,
split into those from the built-in allow-list and those the policy trusts explicitly.
"""

from __future__ import annotations

import hashlib
from typing import Any

from mlwarden.errors import MlwardenError, UnsafeArtifact
from mlwarden.gates.interface import FAIL, PASS, GateContext, GateResult
from mlwarden.registry.sniff import SKOPS, detect_format
from mlwarden.runtime.skops_trust import check_types


class ArtifactSafetyGate:
    name = "artifact_safety"

    def run(self, ctx: GateContext, config: dict[str, Any]) -> GateResult:
        allowed = list(config.get("allowed_formats", ["onnx", "skops"]))
        c = ctx.candidate
        thresholds = {"allowed_formats": allowed}
        actual = hashlib.sha256(c.artifact).hexdigest()
        evidence = {"artifact": actual}
        if actual != c.sha256:
            return GateResult(
                self.name,
                FAIL,
                f"artifact bytes hash to {actual}, not the registered {c.sha256}",
                thresholds=thresholds,
                evidence=evidence,
            )
        if c.attestation_ok is False:
            return GateResult(
                self.name, FAIL, "registration signature does not verify", thresholds=thresholds, evidence=evidence
            )
        try:
            fmt = detect_format(c.artifact, c.filename)
        except UnsafeArtifact as exc:
            return GateResult(self.name, FAIL, exc.message, {"found": list(exc.found)}, thresholds, evidence)
        except MlwardenError as exc:
            return GateResult(self.name, FAIL, exc.message, thresholds=thresholds, evidence=evidence)
        measured = {"format": fmt.name, "signature": "valid" if c.attestation_ok else "not registered"}
        details: dict[str, Any] = {}
        if fmt.name == SKOPS:
            try:
                details["skops_trusted_types"] = check_types(c.artifact, ctx.runtime.skops).to_json()
            except UnsafeArtifact as exc:
                return GateResult(self.name, FAIL, exc.message, {"found": list(exc.found)}, thresholds, evidence)
            except MlwardenError as exc:
                return GateResult(self.name, FAIL, exc.message, thresholds=thresholds, evidence=evidence)
        if fmt.name not in allowed:
            return GateResult(
                self.name,
                FAIL,
                f"format {fmt.name} is not allowed (allowed: {', '.join(allowed)})",
                measured,
                thresholds,
                evidence,
            )
        return GateResult(
            self.name, PASS, f"{fmt.name}, scan clean, hash matches", measured, thresholds, evidence, details
        )
