"""The files a run leaves: report.json, report.html, redteam.sarif (SARIF 2.1.0) and junit.xml.

Every file is written from the scrubbed report: no token given to the run appears in any of them.
"""

from __future__ import annotations

import hashlib
import html
import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from mlwarden import __version__
from mlwarden.gates.figures import json_safe
from mlwarden.redteam.charts import histogram, line_chart

REDACTED = "[redacted]"
_LEVEL = {"high": "error", "medium": "warning", "low": "note"}
_CHART_TITLES = {
    "extraction_fidelity": "Extraction: surrogate fidelity against queries",
    "evasion_perturbation": "Evasion: perturbation needed per successful attack",
}


def scrub(value: Any, secrets: list[str]) -> Any:
    """``value`` with every occurrence of each secret replaced (JSON-able values, recursively)."""
    if isinstance(value, str):
        for secret in secrets:
            if secret:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {scrub(k, secrets): scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, secrets) for v in value]
    return value


def report_bytes(report: dict[str, Any], secrets: list[str]) -> bytes:
    """report.json's exact bytes: scrubbed, JSON-safe (NaN and infinities become null), sorted keys."""
    clean = scrub(json_safe(report), secrets)
    return (json.dumps(clean, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _findings(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for s in report["suites"] for f in s["findings"]]


def sarif(report: dict[str, Any]) -> dict[str, Any]:
    """SARIF 2.1.0: one rule per probe that ran, one result per finding (high: error, medium: warning, low: note)."""
    target = report["target"]
    uri = f"{target['url']}/v1/models/{target['model']}"
    checks = {c["id"]: c for s in report["suites"] for c in s["checks"]}
    for finding in _findings(report):
        checks.setdefault(finding["id"], {"id": finding["id"], "title": finding["title"]})
    rules = [{"id": cid, "name": cid.replace(".", "/"), "shortDescription": {"text": c["title"] or cid}}
             for cid, c in sorted(checks.items())]  # fmt: skip
    results = [
        {
            "ruleId": f["id"], "level": _LEVEL[f["severity"]],
            "message": {"text": f"{f['title']}: {f['remedy']}"},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri}}}],
            "properties": {"severity": f["severity"], "suite": f["suite"], "evidence": f["evidence"]},
        }
        for f in _findings(report)
    ]  # fmt: skip
    run = {
        "tool": {"driver": {"name": "mlwarden-redteam", "version": __version__, "rules": rules}},
        "results": results,
        "properties": {"model": target["model"], "version": target["version"], "sha256": target["sha256"],
                       "verdict": report["verdict"]},
    }  # fmt: skip
    return {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0", "runs": [run]}


def junit(report: dict[str, Any]) -> str:
    """JUnit XML: one test suite per red-team suite, one test case per probe; a finding is a failure."""
    checks = [c for s in report["suites"] for c in s["checks"]]
    failures = sum(c["status"] == "failed" for c in checks)
    skipped = sum(c["status"] == "not_checked" for c in checks)
    root = ET.Element("testsuites", name="mlwarden redteam", tests=str(len(checks)), failures=str(failures),
                      skipped=str(skipped), time=f"{report['seconds']:.3f}")  # fmt: skip
    findings = {f["id"]: f for f in _findings(report)}
    for suite in report["suites"]:
        cases = suite["checks"]
        ts = ET.SubElement(root, "testsuite", name=suite["suite"], tests=str(len(cases)),
                           failures=str(sum(c["status"] == "failed" for c in cases)),
                           skipped=str(sum(c["status"] == "not_checked" for c in cases)),
                           time=f"{suite['seconds']:.3f}")  # fmt: skip
        for check in cases:
            case = ET.SubElement(ts, "testcase", classname=f"mlwarden.redteam.{suite['suite']}", name=check["id"])
            if check["status"] == "failed":
                finding = findings.get(check["id"], {})
                ET.SubElement(case, "failure", message=f"{finding.get('severity', 'finding')}: {check['title']}",
                              type="RedTeamFinding").text = json.dumps(finding, default=str)  # fmt: skip
            elif check["status"] == "not_checked":
                ET.SubElement(case, "skipped", message=check["detail"] or "not checked")
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def _chart(name: str, points: list[dict[str, float]]) -> str:
    title = _CHART_TITLES.get(name, name.replace("_", " "))
    if name == "evasion_perturbation":
        return histogram(title, points)
    keys = ("queries", "fidelity") if name == "extraction_fidelity" else tuple(points[0])[:2] if points else ("x", "y")
    return line_chart(title, points, (str(keys[0]), str(keys[1]))) if len(keys) == 2 else ""


def html_report(report: dict[str, Any]) -> str:
    """A self-contained page (no script, no CDN): the verdict, then each suite's probes, findings and charts."""
    e = html.escape
    target = report["target"]
    counts = report["findings_by_severity"]
    sections = []
    for suite in report["suites"]:
        rows = "".join(
            f"<tr class='{e(c['status'])}'><td>{e(c['id'])}</td><td>{e(c['status'].replace('_', ' '))}</td>"
            f"<td>{e(c['title'])}</td><td>{e(c['detail'])}</td></tr>"
            for c in suite["checks"]
        )
        found = "".join(
            f"<li><b class='{e(f['severity'])}'>{e(f['severity'])}</b> {e(f['id'])}: {e(f['title'])}. "
            f"<i>Remedy:</i> {e(f['remedy'])}<pre>{e(json.dumps(f['evidence'], indent=1, default=str))}</pre></li>"
            for f in suite["findings"]
        )
        metrics = ", ".join(f"{e(str(k))} = {e(json.dumps(v, default=str))}" for k, v in suite["metrics"].items())
        charts = "".join(_chart(name, points) for name, points in suite["charts"].items())
        sections.append(
            f"<h2>{e(suite['suite'])}</h2><p>{len(suite['checks'])} probes, {suite['queries']} queries, "
            f"{suite['seconds']:.1f} s. {metrics}</p>"
            f"<table><tr><th>probe</th><th>status</th><th>what</th><th>detail</th></tr>{rows}</table>"
            + (f"<h3>Findings</h3><ul>{found}</ul>" if found else "")
            + charts
        )
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}td,th{border:1px solid "
        "#ccc;padding:4px 8px;text-align:left;vertical-align:top}tr.passed td:nth-child(2){color:#1a7f37}"
        "tr.failed td:nth-child(2),b.high{color:#b42318;font-weight:bold}b.medium{color:#b54708}"
        "tr.not_checked td:nth-child(2){color:#667085}pre{white-space:pre-wrap;font-size:11px}svg{margin:1em 0}"
    )
    title = f"mlwarden red team: {target['model']} v{target['version']}"
    summary = (f"<p>Verdict: <b>{e(report['verdict'].upper())}</b> (fail on {e(report['fail_on'])}). Findings: "
               f"{counts['high']} high, {counts['medium']} medium, {counts['low']} low. Target {e(target['url'])}, "
               f"sha256 {e(str(target['sha256']))}. Started {e(report['started'])}, {report['seconds']:.1f} s, "
               f"{report['queries']} model queries.</p>")  # fmt: skip
    if report["regressions"]:
        summary += "<p><b class='high'>Regressions</b> since the baseline: " + e(", ".join(report["regressions"]))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{style}</style>"
            f"</head><body><h1>{e(title)}</h1>{summary}{''.join(sections)}</body></html>")  # fmt: skip


def write_evidence(report: dict[str, Any], folder: Path, secrets: list[str]) -> tuple[dict[str, str], str]:
    """Write the four files into ``folder``; return their paths and the digest of report.json."""
    folder.mkdir(parents=True, exist_ok=True)
    data = report_bytes(report, secrets)
    clean = json.loads(data)
    paths = {"json": folder / "report.json", "html": folder / "report.html", "sarif": folder / "redteam.sarif",
             "junit": folder / "junit.xml"}  # fmt: skip
    paths["json"].write_bytes(data)
    paths["html"].write_text(html_report(clean), encoding="utf-8")
    paths["sarif"].write_text(json.dumps(sarif(clean), indent=2), encoding="utf-8")
    paths["junit"].write_text(junit(clean), encoding="utf-8")
    return {k: str(v) for k, v in paths.items()}, digest(data)
