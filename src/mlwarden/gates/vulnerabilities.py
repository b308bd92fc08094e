"""Gate ``vulnerabilities``: judge attached reports (pip-audit, OSV, Trivy, CycloneDX) offline, with waivers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mlwarden.gates.interface import ERROR, FAIL, PASS, GateContext, GateResult

SEVERITY = {"unknown": 0, "low": 1, "medium": 2, "moderate": 2, "high": 3, "critical": 4}


@dataclass(frozen=True, slots=True)
class Finding:
    id: str
    aliases: tuple[str, ...]
    package: str
    severity: str
    source: str


def _cvss_to_severity(score: float) -> str:
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low" if score > 0 else "unknown"


def _severity(value: Any) -> str:
    if isinstance(value, int | float):
        return _cvss_to_severity(float(value))
    text = str(value or "").strip().lower()
    try:
        return _cvss_to_severity(float(text))
    except ValueError:
        return text if text in SEVERITY else "unknown"


def parse_report(name: str, data: bytes) -> list[Finding]:
    """Findings from one report; the format is recognised from its content."""
    doc = json.loads(data)
    out: list[Finding] = []
    if isinstance(doc, dict) and doc.get("bomFormat") == "CycloneDX":
        for v in doc.get("vulnerabilities", []):
            ratings = v.get("ratings") or [{}]
            worst = max((_severity(r.get("severity") or r.get("score")) for r in ratings), key=SEVERITY.__getitem__)
            refs = ",".join(a.get("ref", "") for a in v.get("affects", []))
            out.append(Finding(v.get("id", "?"), (), refs, worst, name))
    elif isinstance(doc, dict) and "Results" in doc:  # Trivy
        for result in doc.get("Results") or []:
            for v in result.get("Vulnerabilities") or []:
                out.append(
                    Finding(
                        v.get("VulnerabilityID", "?"),
                        (),
                        f"{v.get('PkgName')}@{v.get('InstalledVersion')}",
                        _severity(v.get("Severity")),
                        name,
                    )
                )
    elif isinstance(doc, dict) and "results" in doc:  # OSV scanner
        for result in doc.get("results") or []:
            for pkg in result.get("packages") or []:
                groups = {i: g.get("max_severity") for g in pkg.get("groups") or [] for i in g.get("ids", [])}
                package = f"{pkg.get('package', {}).get('name')}@{pkg.get('package', {}).get('version')}"
                for v in pkg.get("vulnerabilities") or []:
                    sev = (v.get("database_specific") or {}).get("severity") or groups.get(v.get("id"))
                    out.append(Finding(v.get("id", "?"), tuple(v.get("aliases") or ()), package, _severity(sev), name))
    elif isinstance(doc, dict) and "dependencies" in doc:  # pip-audit
        for dep in doc.get("dependencies") or []:
            for v in dep.get("vulns") or []:
                package = f"{dep.get('name')}@{dep.get('version')}"
                aliases = tuple(v.get("aliases") or ())
                out.append(Finding(v.get("id", "?"), aliases, package, _severity(v.get("severity")), name))
    else:
        raise ValueError("not a pip-audit, OSV, Trivy or CycloneDX JSON report")
    return out


class VulnerabilitiesGate:
    name = "vulnerabilities"

    def run(self, ctx: GateContext, config: dict[str, Any]) -> GateResult:
        fail_on = str(config.get("fail_on", "high")).lower()
        unknown_as = str(config.get("unknown_severity_as", "high")).lower()
        thresholds = {
            "fail_on": fail_on,
            "unknown_severity_as": unknown_as,
            "require_report": bool(config.get("require_report", True)),
        }
        if not ctx.reports:
            if config.get("require_report", True):
                return GateResult(
                    self.name, ERROR, "no vulnerability report attached to this version", thresholds=thresholds
                )
            return GateResult(self.name, PASS, "no reports required", thresholds=thresholds)
        findings: list[Finding] = []
        evidence: dict[str, str] = {}
        for filename, data, sha in ctx.reports:
            evidence[filename] = sha
            try:
                findings += parse_report(filename, data)
            except (ValueError, AttributeError, TypeError) as exc:
                return GateResult(
                    self.name, ERROR, f"cannot read report {filename}: {exc}", thresholds=thresholds, evidence=evidence
                )
        limit = SEVERITY.get(fail_on, 3)
        blocking, waived, expired = [], [], []
        used: list[dict[str, str]] = []
        for f in findings:
            sev = unknown_as if f.severity == "unknown" else f.severity
            if SEVERITY.get(sev, 3) < limit:
                continue
            waiver = next((w for w in ctx.waivers if w.finding_id in (f.id, *f.aliases)), None)
            if waiver is not None and waiver.expires > ctx.now:
                waived.append(f"{f.id} (waived by {waiver.approver} until {waiver.expires:%Y-%m-%d}: {waiver.reason})")
                used.append({"finding": f.id, "expires": waiver.expires.isoformat(), "approver": waiver.approver})
            elif waiver is not None:
                expired.append(f.id)
                blocking.append(f)
            else:
                blocking.append(f)
        measured = {
            "findings": len(findings),
            "blocking": len(blocking),
            "waived": len(waived),
            "expired_waivers": expired,
        }
        details = {
            "blocking": [f"{f.id} {f.severity} in {f.package}" for f in blocking],
            "waived": waived,
            "waivers_used": used,  # structured, for the watcher's governance.event (a waiver used or about to expire)
        }
        if blocking:
            first = ", ".join(f"{f.id} ({f.severity}, {f.package})" for f in blocking[:5])
            note = f"; expired waivers: {', '.join(expired)}" if expired else ""
            return GateResult(
                self.name,
                FAIL,
                f"{len(blocking)} finding(s) at or above {fail_on}: {first}{note}",
                measured,
                thresholds,
                evidence,
                details,
            )
        return GateResult(
            self.name,
            PASS,
            f"{len(findings)} finding(s), none blocking; {len(waived)} waived",
            measured,
            thresholds,
            evidence,
            details,
        )
