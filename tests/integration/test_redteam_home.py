"""``mlwarden redteam run --home``: the workspace's own gateway in process, a recorded run, the gate that reads it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.gates.redteam import RedTeamGate
from mlwarden.gates.runner import parse_gate_policy
from mlwarden.registry.dataset_versions import register_dataset
from mlwarden.registry.governance import approve_and_promote, gate_context
from mlwarden.registry.models import register_model
from mlwarden.samples import SampleModel, breast_cancer_model
from mlwarden.workspace import init_workspace, open_workspace
from tests.support.cli import Cli

POLICY = parse_gate_policy({"stages": {"production": {"gates": ["redteam"]}}, "gates": {"redteam": {}}})


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleModel:
    return breast_cancer_model(tmp_path_factory.mktemp("redteam-home") / "art", trees=5)


@pytest.fixture
def served_home(home: Path, sample: SampleModel) -> WorkspaceOptions:
    """bc v1 (ONNX, with its signature) in production; v2 (the skops build) registered, not promoted."""
    options = WorkspaceOptions.from_settings(Settings(database_url=None), home)
    init_workspace(options)
    ws = open_workspace(options)
    try:
        register_dataset(ws, name="breast-cancer-train", path=sample.train_csv, principal="alice", label="target")
        register_model(ws, name="bc", path=sample.onnx, card_path=sample.card, principal="alice",
                       signature_path=sample.signature)  # fmt: skip
        approve_and_promote(ws, "bc", 1, approver="reviewer")
        register_model(ws, name="bc", path=sample.skops, card_path=sample.card, principal="alice")
    finally:
        ws.close()
    return options


def _gate(options: WorkspaceOptions, version: int) -> tuple[str, str]:
    ws = open_workspace(options)
    try:
        result = RedTeamGate().run(gate_context(ws, "bc", version, POLICY, "production"), {})
    finally:
        ws.close()
    return result.status, result.message


@pytest.mark.slow
def test_a_home_run_is_recorded_and_satisfies_the_gate_for_exactly_that_artifact(
    cli: Cli, served_home: WorkspaceOptions, tmp_path: Path
) -> None:
    """Before: the gate fails. After a clean --home run: it passes for v1's sha256, and still fails for v2's."""
    assert _gate(served_home, 1)[0] == "fail"
    out = tmp_path / "report"
    result = cli("redteam", "run", "--model", "bc", "--suite", "access,input,poisoning,governance",
                 "--report-dir", str(out), "--json")  # fmt: skip
    assert result.code == 0, result.out + result.err
    outcome = json.loads(result.out.strip().splitlines()[-1])
    assert outcome["verdict"] == "pass"
    report = json.loads((out / "report.json").read_text())
    checks = {c["id"]: c["status"] for s in report["suites"] for c in s["checks"]}
    assert checks["governance.production-outside-gates"] == "passed"  # --home: the database intrusion is tried
    assert checks["governance.self-approval"] == "passed"  # the author's approval is recorded but does not count
    assert checks["access.recorded"] == "passed"  # every refusal found in the workspace's ledger
    ws = open_workspace(served_home)
    try:
        entry = ws.log.entry(outcome["ledger_index"]).parse()
    finally:
        ws.close()
    assert entry.kind == "redteam.run"
    assert entry.subject == "model:bc:1"
    assert entry.body["report_digest"] == outcome["digest"]
    assert entry.body["sha256"] == report["target"]["sha256"]
    assert entry.body["findings"] == report["findings_by_severity"]
    assert entry.principal.startswith("local:")
    assert _gate(served_home, 1)[0] == "pass"
    status, message = _gate(served_home, 2)
    assert status == "fail"
    assert "none for this sha256" in message


@pytest.mark.slow
def test_record_imports_a_report_only_for_the_artifact_it_names(
    cli: Cli, served_home: WorkspaceOptions, tmp_path: Path
) -> None:
    """A CI report about v1's sha256 is recorded; the same report claiming another sha256 is refused (exit 2)."""
    out = tmp_path / "report"
    assert cli("redteam", "run", "--model", "bc", "--suite", "input", "--report-dir", str(out)).code == 0
    result = cli("redteam", "record", str(out / "report.json"))
    assert result.code == 0, result.err
    assert "recorded: ledger entry" in result.out
    forged = json.loads((out / "report.json").read_text())
    forged["target"]["sha256"] = "0" * 64
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    refused = cli("redteam", "record", str(tmp_path / "forged.json"))
    assert refused.code == 2
    assert "sha256" in refused.err


@pytest.mark.slow
def test_schedule_runs_again_against_the_previous_report(cli: Cli, served_home: WorkspaceOptions,
                                                         tmp_path: Path) -> None:  # fmt: skip
    """Two scheduled runs: the second takes the first's report as its baseline; both are recorded."""
    reports = tmp_path / "reports"
    result = cli("redteam", "schedule", "--every", "1s", "--count", "2", "--report-dir", str(reports),
                 "--model", "bc", "--suite", "input")  # fmt: skip
    assert result.code == 0, result.err
    runs = sorted(p for p in reports.iterdir() if p.is_dir())
    assert len(runs) == 2
    second = json.loads((runs[1] / "report.json").read_text())
    assert second["baseline"] == str(runs[0] / "report.json")
    assert second["regressions"] == []
    assert result.out.count("run exit 0") == 2


@pytest.mark.slow
def test_the_demo_step_waits_out_a_tight_rate_limit_and_says_where_the_report_is(
    served_home: WorkspaceOptions, sample: SampleModel, tmp_path: Path
) -> None:
    """Against the demo's settings (2 requests/s, burst 4): every probe is still judged, none left to a 429."""
    from mlwarden.identity.tokens import create_token
    from mlwarden.redteam.demo import demo_redteam
    from mlwarden.redteam.home import serving

    ws = open_workspace(served_home)
    try:
        scorer, _ = create_token(ws, name="scorer", scopes=["inference:read"], principal="local:demo", models=["bc"])
    finally:
        ws.close()
    lines: list[str] = []
    settings = Settings(database_url=None, rate_limit=2, rate_burst=4, gc_freeze=False)
    with serving(served_home, settings) as url:
        outcome = demo_redteam(url, model="bc", inference_token=scorer, report_dir=tmp_path / "demo",
                               signature=sample.signature, echo=lines.append)  # fmt: skip
    assert outcome.report.passed
    statuses = [c.status.value for s in outcome.report.suites for c in s.checks]
    assert statuses.count("passed") > 40
    assert all(c.detail.startswith("rate-limited") is False for s in outcome.report.suites for c in s.checks)
    assert lines[-1].endswith("(also report.json, redteam.sarif, junit.xml)")
    assert str(tmp_path / "demo" / "report.html") in lines[-1]
