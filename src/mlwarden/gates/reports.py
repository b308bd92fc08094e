"""Gate results for people and for CI: a text table, JUnit XML, SARIF 2.1.0 and an HTML report."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from mlwarden import __version__
from mlwarden.gates.interface import FAIL, PASS, GateResult

MARK = {PASS: "PASS", FAIL: "FAIL", "error": "ERROR"}


def _number(value: object) -> str:
    """A figure to four places, or "n/a" when there is none (missing, NaN and infinite figures are None)."""
    return f"{value:.4f}" if isinstance(value, int | float) else "n/a"


def table(results: list[GateResult], title: str) -> str:
    """A plain-text table (what `promote` and `gate check` print)."""
    width = max([len(r.gate) for r in results] + [4])
    lines = [title, f"  {'gate':<{width}}  status  detail"]
    for r in results:
        lines.append(f"  {r.gate:<{width}}  {MARK.get(r.status, r.status):<6}  {r.message}")
    if not results:
        lines.append("  (no gates configured for this stage)")
    return "\n".join(lines)


def junit(results: list[GateResult], suite: str) -> str:
    """JUnit XML: one test case per gate; fail → <failure>, error → <error>."""
    failures = sum(r.status == FAIL for r in results)
    errors = sum(r.status not in (PASS, FAIL) for r in results)
    root = ET.Element(
        "testsuites", name="mlwarden gates", tests=str(len(results)), failures=str(failures), errors=str(errors)
    )
    ts = ET.SubElement(
        root, "testsuite", name=suite, tests=str(len(results)), failures=str(failures), errors=str(errors)
    )
    for r in results:
        case = ET.SubElement(ts, "testcase", classname=f"mlwarden.gates.{suite}", name=r.gate)
        if r.status == FAIL:
            ET.SubElement(case, "failure", message=r.message, type="GateFailed").text = json.dumps(
                r.measured, default=str
            )
        elif r.status != PASS:
            ET.SubElement(case, "error", message=r.message, type="GateError")
        ET.SubElement(case, "system-out").text = json.dumps(r.to_json(), default=str)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def sarif(results: list[GateResult], artifact_uri: str) -> dict[str, Any]:
    """SARIF 2.1.0: one rule per gate, one result per gate that did not pass."""
    rules = [
        {"id": f"mlwarden/{r.gate}", "name": r.gate, "shortDescription": {"text": f"mlwarden gate {r.gate}"}}
        for r in results
    ]
    findings = [
        {
            "ruleId": f"mlwarden/{r.gate}",
            "level": "error",
            "message": {"text": r.message},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": artifact_uri}}}],
            "properties": {"status": r.status, "measured": r.measured, "thresholds": r.thresholds},
        }
        for r in results
        if r.status != PASS
    ]
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {"tool": {"driver": {"name": "mlwarden", "version": __version__, "rules": rules}}, "results": findings}
        ],
    }


def _bars(by_group: dict[str, dict[str, float]], metric: str) -> str:
    width, bar_h, gap = 420, 22, 8
    height = len(by_group) * (bar_h + gap) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + 160}" height="{height}" role="img" aria-label="{metric} by group">'
    ]
    parts.append(f'<text x="0" y="14" font-size="13">{html.escape(metric.replace("_", " "))} by group</text>')
    for i, (group, values) in enumerate(sorted(by_group.items())):
        value = float(values.get(metric, 0.0))
        y = 24 + i * (bar_h + gap)
        parts.append(f'<text x="0" y="{y + 15}" font-size="12">{html.escape(group)}</text>')
        parts.append(f'<rect x="120" y="{y}" width="{max(1, value * width):.1f}" height="{bar_h}" fill="#3b6ea5"/>')
        parts.append(f'<text x="{125 + value * width:.1f}" y="{y + 15}" font-size="12">{value:.3f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def html_report(results: list[GateResult], title: str) -> str:
    """A self-contained HTML page: the gate table, the metric comparison and the fairness chart."""
    rows = "".join(
        f"<tr class='{r.status}'><td>{html.escape(r.gate)}</td><td>{MARK.get(r.status, r.status)}</td>"
        f"<td>{html.escape(r.message)}</td></tr>"
        for r in results
    )
    sections = []
    for r in results:
        if r.gate == "performance" and r.measured:
            production = r.details.get("production") or {}
            body = "".join(
                f"<tr><td>{html.escape(k)}</td><td>{_number(v)}</td><td>{_number(production.get(k))}</td></tr>"
                for k, v in sorted(r.measured.items())
            )
            version = r.details.get("production_version")
            against = f"candidate vs production v{version}" if version is not None else "no production version"
            sections.append(
                f"<h2>Metrics ({html.escape(against)})</h2>"
                f"<table><tr><th>metric</th><th>candidate</th><th>production</th></tr>{body}</table>"
            )
        if r.gate == "fairness" and r.details.get("by_group"):
            by_group = r.details["by_group"]
            sections.append(
                "<h2>Fairness by group</h2>" + _bars(by_group, "selection_rate") + _bars(by_group, "accuracy")
            )
            sections.append("<p>" + html.escape(", ".join(f"{k} = {v}" for k, v in r.measured.items())) + "</p>")
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:960px}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:4px 8px;text-align:left}tr.pass td:nth-child(2){color:#1a7f37}tr.fail td:nth-child(2),"
        "tr.error td:nth-child(2){color:#b42318;font-weight:bold}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style></head>"
        f"<body><h1>{html.escape(title)}</h1><table><tr><th>gate</th><th>status</th><th>detail</th></tr>{rows}</table>"
        + "".join(sections)
        + "</body></html>"
    )


def write_reports(
    results: list[GateResult], folder: Path, *, title: str, suite: str, artifact_uri: str
) -> dict[str, str]:
    """Write junit.xml, gates.sarif and report.html into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"junit": folder / "junit.xml", "sarif": folder / "gates.sarif", "html": folder / "report.html"}
    paths["junit"].write_text(junit(results, suite), encoding="utf-8")
    paths["sarif"].write_text(json.dumps(sarif(results, artifact_uri), indent=2), encoding="utf-8")
    paths["html"].write_text(html_report(results, title), encoding="utf-8")
    return {k: str(v) for k, v in paths.items()}
