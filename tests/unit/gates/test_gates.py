"""Each gate refuses the model built to fail it, with a message a reviewer understands; a good one is served."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import update

from mlwarden.errors import GateFailed
from mlwarden.ledger.entry import Entry
from mlwarden.registry.governance import approve, attach_report, promote, rollback, stage_drift
from mlwarden.registry.models import get_version, register_model
from mlwarden.store.schema import model_versions
from mlwarden.workspace import Workspace
from tests.unit.gates.conftest import Zoo


def _register(ws: Workspace, path: Path, card: Path, name: str = "toy") -> int:
    return register_model(ws, name=name, path=path, card_path=card, principal="alice").version


def _trivy(tmp_path: Path, vuln_id: str, severity: str) -> Path:
    report = {
        "Results": [
            {
                "Target": "image",
                "Vulnerabilities": [
                    {
                        "VulnerabilityID": vuln_id,
                        "PkgName": "openssl",
                        "InstalledVersion": "3.0.1",
                        "Severity": severity,
                    }
                ],
            }
        ]
    }
    path = tmp_path / f"{vuln_id}.json"
    path.write_text(json.dumps(report))
    return path


def _clean_report(tmp_path: Path) -> Path:
    path = tmp_path / "pip-audit.json"
    path.write_text(json.dumps({"dependencies": [{"name": "numpy", "version": "2.4.6", "vulns": []}]}))
    return path


def _refused_by(ws: Workspace, version: int, gate: str, needle: str, name: str = "toy") -> GateFailed:
    with pytest.raises(GateFailed) as caught:
        promote(ws, name, version, "production", "bob")
    failed = {r.gate: r for r in caught.value.results if r.status != "pass"}
    assert gate in failed, {g: r.message for g, r in failed.items()}
    assert needle in failed[gate].message
    return caught.value


def _ready(ws: Workspace, tmp_path: Path, version: int, name: str = "toy") -> None:
    attach_report(ws, name, version, _clean_report(tmp_path), "alice")
    approve(ws, name, version, "bob")


def test_good_model_passes_and_is_served(gated: Workspace, zoo: Zoo, tmp_path: Path) -> None:
    """Complete card, good metrics, fair, clean report, second-person approval: promoted and recorded."""
    v = _register(gated, zoo.good, zoo.card)
    _ready(gated, tmp_path, v)
    result = promote(gated, "toy", v, "production", "bob")
    assert result["stage"] == "production"
    entries = [Entry.parse(t) for _i, t, _h in gated.log.iter_rows()]
    run = next(e for e in reversed(entries) if e.kind == "gate.run")
    assert run.body["passed"] is True
    assert {r["gate"] for r in run.body["results"]} == {
        "model_card",
        "artifact_safety",
        "performance",
        "fairness",
        "vulnerabilities",
        "approvals",
    }
    promoted = next(e for e in reversed(entries) if e.kind == "model.promoted")
    assert promoted.body["gates"]["passed"] is True


def test_incomplete_card_is_refused(gated: Workspace, zoo: Zoo, tmp_path: Path) -> None:
    """A card without datasets/metrics keys and with empty sections fails model_card, naming what is missing."""
    v = _register(gated, zoo.good, zoo.bad_card)
    _ready(gated, tmp_path, v)
    error = _refused_by(gated, v, "model_card", "missing front-matter keys: datasets, metrics")
    assert "limitations" in str(error)


def test_below_threshold_is_refused(gated: Workspace, zoo: Zoo, tmp_path: Path) -> None:
    """A weak model fails the accuracy floor computed on the evaluation data."""
    v = _register(gated, zoo.weak, zoo.card)
    _ready(gated, tmp_path, v)
    _refused_by(gated, v, "performance", "accuracy")


def test_regression_against_production_is_refused(gated: Workspace, zoo: Zoo, tmp_path: Path) -> None:
    """With a good model in production, a worse candidate (even above the floor) is refused as a regression."""
    good = _register(gated, zoo.good, zoo.card)
    _ready(gated, tmp_path, good)
    promote(gated, "toy", good, "production", "bob")
    gated.options.paths.policy.write_text(
        gated.options.paths.policy.read_text().replace(
            "accuracy: {min: 0.85}, roc_auc: {min: 0.9}", "accuracy: {min: 0.5}"
        )
    )
    weak = _register(gated, zoo.weak, zoo.card)
    _ready(gated, tmp_path, weak)
    _refused_by(gated, weak, "performance", "regresses")


def test_biased_model_is_refused_with_group_figures(gated: Workspace, zoo: Zoo, tmp_path: Path) -> None:
    """A model that favours one group fails fairness; the message and details carry per-group selection rates."""
    v = _register(gated, zoo.biased, zoo.card)
    _ready(gated, tmp_path, v)
    error = _refused_by(gated, v, "fairness", "demographic parity difference")
    fairness = next(r for r in error.results if r.gate == "fairness")
    rates = {g: row["selection_rate"] for g, row in fairness.details["by_group"].items()}
    assert rates["1.0"] - rates["0.0"] > 0.15


def test_critical_vulnerability_is_refused_and_waivers_expire(gated: Workspace, zoo: Zoo, tmp_path: Path) -> None:
    """A critical finding blocks; a current waiver covers its finding; an expired waiver does not."""
    v = _register(gated, zoo.good, zoo.card)
    approve(gated, "toy", v, "bob")
    attach_report(gated, "toy", v, _trivy(tmp_path, "CVE-2099-0001", "CRITICAL"), "alice")
    _refused_by(gated, v, "vulnerabilities", "CVE-2099-0001 (critical")
    v2 = _register(gated, zoo.good, zoo.card, name="toy2")
    approve(gated, "toy2", v2, "bob")
    attach_report(gated, "toy2", v2, _trivy(tmp_path, "GHSA-waived-0001", "HIGH"), "alice")
    assert promote(gated, "toy2", v2, "staging", "bob")["stage"] == "staging"
    attach_report(gated, "toy2", v2, _trivy(tmp_path, "GHSA-expired-0002", "HIGH"), "alice")
    _refused_by(gated, v2, "vulnerabilities", "expired waivers: GHSA-expired-0002", name="toy2")


def test_self_approval_is_not_enough(gated: Workspace, zoo: Zoo, tmp_path: Path) -> None:
    """Approved only by its registrant: the approvals gate refuses (four eyes)."""
    v = _register(gated, zoo.good, zoo.card)
    attach_report(gated, "toy", v, _clean_report(tmp_path), "alice")
    approve(gated, "toy", v, "alice")
    _refused_by(gated, v, "approvals", "registrant's own approval does not count")


def test_refusals_and_gate_runs_are_recorded(gated: Workspace, zoo: Zoo) -> None:
    """A refused promotion leaves a gate.run and a model.promotion_refused entry; the stage is unchanged."""
    v = _register(gated, zoo.good, zoo.bad_card)
    with pytest.raises(GateFailed):
        promote(gated, "toy", v, "production", "bob")
    kinds = [Entry.parse(t).kind for _i, t, _h in gated.log.iter_rows()]
    assert kinds[-2:] == ["gate.run", "model.promotion_refused"]
    assert get_version(gated, "toy", v)["stage"] == "candidate"


def test_rollback_and_stage_drift(gated: Workspace, zoo: Zoo, tmp_path: Path) -> None:
    """Rollback returns to the replaced production version; a stage set directly in the database is reported."""
    first = _register(gated, zoo.good, zoo.card)
    _ready(gated, tmp_path, first)
    promote(gated, "toy", first, "production", "bob")
    lax = gated.options.paths.policy.read_text().replace(
        "gates: [model_card, artifact_safety, performance, fairness, vulnerabilities, approvals]",
        "gates: [model_card, artifact_safety, approvals]",
    )
    gated.options.paths.policy.write_text(lax)
    second = register_model(gated, name="toy", path=zoo.biased, card_path=zoo.card, principal="alice").version
    _ready(gated, tmp_path, second)
    promote(gated, "toy", second, "production", "bob")
    assert get_version(gated, "toy", first)["stage"] == "archived"
    assert rollback(gated, "toy", "bob")["version"] == first
    assert get_version(gated, "toy", first)["stage"] == "production"
    assert stage_drift(gated) == []
    with gated.engine.begin() as conn:
        conn.execute(update(model_versions).where(model_versions.c.version == second).values(stage="production"))
        conn.execute(update(model_versions).where(model_versions.c.version == first).values(stage="staging"))
    drifted = {d["model"]: d for d in stage_drift(gated)}
    assert drifted[f"toy:{second}"]["ledger_says"] == "archived"
    assert drifted[f"toy:{first}"]["ledger_says"] == "production"


def test_a_waiver_about_to_expire_is_named_by_the_governance_alert(gated: Workspace, zoo: Zoo, tmp_path: Path) -> None:
    """A promotion using a waiver that expires within 14 days raises governance.event saying so; a far one does not."""
    from datetime import UTC, datetime, timedelta

    from mlwarden.monitor.alerts_store import list_alerts
    from mlwarden.monitor.references import ReferenceBook
    from mlwarden.monitor.rules import build_rules
    from mlwarden.monitor.rules_file import parse_rules
    from mlwarden.monitor.sampling import workspace_opener
    from mlwarden.monitor.watcher import Watcher

    soon = (datetime.now(UTC) + timedelta(days=5)).date().isoformat()
    policy = gated.options.paths.policy
    waiver = f"  - {{id: GHSA-soon-0003, reason: patch is scheduled, expires: {soon}, approver: sec@example.com}}\n"
    policy.write_text(policy.read_text().replace("waivers:\n", "waivers:\n" + waiver))
    for name, finding in (("toy", "GHSA-soon-0003"), ("toy2", "GHSA-waived-0001")):
        v = _register(gated, zoo.good, zoo.card, name=name)
        approve(gated, name, v, "bob")
        attach_report(gated, name, v, _trivy(tmp_path, finding, "HIGH"), "alice")
        assert promote(gated, name, v, "production", "bob")["stage"] == "production"
    watcher = Watcher(gated, lambda: build_rules(parse_rules(""), ReferenceBook.of_workspace(gated),
                                                 workspace_opener(gated)))  # fmt: skip
    while watcher.tick():
        pass
    found = {a.alert.subject: a.alert for a in list_alerts(gated) if a.alert.rule == "governance.event"}
    assert set(found) == {"model:toy:1", "model:toy2:1"}, found
    soon_alert, far_alert = found["model:toy:1"], found["model:toy2:1"]
    assert f"about to expire: GHSA-soon-0003 expires {soon}" in soon_alert.summary
    expiring = (soon_alert.details or {})["waivers_expiring"]
    assert [w["finding"] for w in expiring] == ["GHSA-soon-0003"]
    assert 3.9 < expiring[0]["days_left"] <= 5
    assert "about to expire" not in far_alert.summary
    assert "waivers_expiring" not in (far_alert.details or {})
    assert far_alert.summary == "1 waiver(s) used in a gate run of model:toy2:1"
