"""`mlwarden gate check` in CI and the workflow commands: exit codes, reports, and what the gateway serves."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from mlwarden.api.app import create_app
from mlwarden.config import Settings
from mlwarden.identity.personal_keys import CreatedKey, create_personal_key
from mlwarden.identity.tokens import create_token
from mlwarden.registry.governance import approve, promote
from mlwarden.registry.models import register_model
from mlwarden.store.schema import model_versions
from mlwarden.workspace import Workspace
from tests.unit.cli.conftest import Cli
from tests.unit.gates.conftest import POLICY, Zoo

CI_POLICY = POLICY.replace("    dataset: toy-eval\n", "")


@pytest.fixture
def bob_key(tmp_path: Path) -> CreatedKey:
    return create_personal_key("bob", tmp_path / "keys")


@pytest.fixture
def policy_file(tmp_path: Path, bob_key: CreatedKey) -> Path:
    path = tmp_path / "policy.yaml"
    approvers = f"approvers:\n{bob_key.policy_line(('ci:bob',))}\n"
    path.write_text(CI_POLICY.replace("vulnerabilities, approvals]", "approvals]") + approvers)
    return path


def _signed_approval(cli: Cli, key: CreatedKey, artifact: Path, policy: Path, out: Path) -> Path:
    made = cli(
        "model", "approve", "toy:1", "--sign-with", str(key.private_key), "--out", str(out),
        "--artifact", str(artifact), "--policy", str(policy), use_home=False,
    )  # fmt: skip
    assert made.code == 0, made.err
    return out


def test_gate_check_passes_a_good_artifact_and_writes_reports(
    cli: Cli, zoo: Zoo, policy_file: Path, bob_key: CreatedKey, tmp_path: Path
) -> None:
    """A good model file with its card, eval data and a signed approval: exit 0, JUnit, SARIF 2.1.0 and HTML."""
    out = tmp_path / "reports"
    approval = _signed_approval(cli, bob_key, zoo.good, policy_file, tmp_path / "approval.json")
    result = cli(
        "gate",
        "check",
        str(zoo.good),
        "--policy",
        str(policy_file),
        "--stage",
        "production",
        "--eval",
        str(zoo.eval_csv),
        "--card",
        str(zoo.card),
        "--approval",
        str(approval),
        "--registrant",
        "ci:alice",
        "--report-dir",
        str(out),
        use_home=False,
    )
    assert result.code == 0, result.out + result.err
    assert "PASS" in result.out
    suite = ET.parse(out / "junit.xml").getroot()
    assert suite.get("failures") == "0"
    assert len(suite.findall(".//testcase")) == 5
    sarif = json.loads((out / "gates.sarif").read_text())
    assert sarif["version"] == "2.1.0"
    assert sarif["runs"][0]["results"] == []
    page = (out / "report.html").read_text()
    assert "<svg" in page
    assert "Fairness by group" in page


def test_gate_check_fails_a_biased_artifact_with_exit_1(
    cli: Cli, zoo: Zoo, policy_file: Path, bob_key: CreatedKey, tmp_path: Path
) -> None:
    """The biased model exits 1; SARIF carries the fairness result and JUnit a failure."""
    out = tmp_path / "reports"
    approval = _signed_approval(cli, bob_key, zoo.biased, policy_file, tmp_path / "approval.json")
    result = cli(
        "gate",
        "check",
        str(zoo.biased),
        "--policy",
        str(policy_file),
        "--eval",
        str(zoo.eval_csv),
        "--card",
        str(zoo.card),
        "--approval",
        str(approval),
        "--registrant",
        "ci:alice",
        "--report-dir",
        str(out),
        use_home=False,
    )
    assert result.code == 1
    assert "fairness" in result.out
    assert "FAIL" in result.out
    sarif = json.loads((out / "gates.sarif").read_text())
    rules = [r["ruleId"] for r in sarif["runs"][0]["results"]]
    assert "mlwarden/fairness" in rules
    assert ET.parse(out / "junit.xml").getroot().get("failures") == str(len(rules))


@pytest.mark.parametrize("problem", ["missing-file", "bad-policy", "unknown-gate", "no-gates"])
def test_gate_check_usage_errors_exit_2(cli: Cli, zoo: Zoo, tmp_path: Path, problem: str) -> None:
    """Bad input is exit 2 with one line, never a gate verdict."""
    policy = tmp_path / "p.yaml"
    policy.write_text(
        {
            "missing-file": CI_POLICY,
            "bad-policy": "stages: [",
            "unknown-gate": "stages: {production: {gates: [vibes]}}",
            "no-gates": "stages: {}",
        }[problem]
    )
    target = str(tmp_path / "nope.onnx") if problem == "missing-file" else str(zoo.good)
    result = cli("gate", "check", target, "--policy", str(policy), use_home=False)
    assert result.code == 2, (problem, result.out, result.err)
    assert result.err.count("\n") == 1


def test_stage_set_directly_in_the_database_is_not_served(gated: Workspace, zoo: Zoo, tmp_path: Path) -> None:
    """A version made 'production' by an UPDATE is refused by the gateway (503) and recorded as tampering."""
    good = register_model(gated, name="toy", path=zoo.good, card_path=zoo.card, principal="alice").version
    rogue = register_model(gated, name="toy", path=zoo.biased, card_path=zoo.card, principal="alice").version
    gated.options.paths.policy.write_text(
        CI_POLICY.replace("performance, fairness, vulnerabilities, approvals]", "approvals]")
    )
    approve(gated, "toy", good, "bob")
    promote(gated, "toy", good, "production", "bob")
    with gated.engine.begin() as conn:
        conn.execute(update(model_versions).where(model_versions.c.version == good).values(stage="archived"))
        conn.execute(update(model_versions).where(model_versions.c.version == rogue).values(stage="production"))
    token, _ = create_token(gated, name="svc", scopes=["inference:read"], principal="admin")
    app = create_app(gated.options, Settings(database_url=None, gc_freeze=False, rate_limit=0))
    with TestClient(app) as client:
        row = [[0.1, 0.2, 0.3, 1.0]]
        response = client.post(
            "/v1/models/toy/predict", json={"inputs": row}, headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 503
    assert "no gated promotion" in response.json()["detail"]
    assert response.json()["type"] == "urn:mlwarden:problem:model-unavailable"
    tail = [e.parse().kind for e in gated.log.tail(5)]
    assert "model.stage_tampered" in tail


def test_workflow_commands(cli: Cli, zoo: Zoo, home: Path, tmp_path: Path) -> None:
    """approve, promote (refused with the gate table, then passing), check, rollback from the command line."""
    cli("init")
    (home / "policy.yaml").write_text(
        CI_POLICY.replace("performance, fairness, vulnerabilities, approvals]", "approvals]")
    )
    cli("dataset", "register", "toy-train", str(zoo.train_csv))
    cli("model", "register", "toy", str(zoo.good), "--card", str(zoo.card))
    refused = cli("model", "promote", "toy", "1", "--to", "production")
    assert refused.code == 1
    assert "approvals" in refused.out
    assert "FAIL" in refused.out
    assert "promotion refused" in refused.err
    assert cli("model", "approve", "toy", "1").code == 0  # the registrant (same local user) does not count
    assert cli("model", "promote", "toy", "1", "--to", "production").code == 1
    assert cli("model", "check").code == 0
    assert cli("model", "rollback", "toy").code == 2
