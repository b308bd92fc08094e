"""``mlwarden redteam run --home --suite extraction`` against the default rules: the watcher sees the copy being made.

The model's training dataset is in its lineage (the watcher's reference), as in the demo. With
the default ``alerts:`` the suite's synthetic queries raise ``inference.extraction`` (off_shape)
and its finding is low; with that one signal turned off the same run goes unseen and is high,
which is the blind spot the signal closes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.samples import SampleModel, breast_cancer_model
from mlwarden.workspace import init_workspace, open_workspace
from tests.support.cli import Cli
from tests.support.served import bc_in_production

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleModel:
    return breast_cancer_model(tmp_path_factory.mktemp("redteam-extraction") / "art", trees=20)


@pytest.fixture
def served_home(home: Path, sample: SampleModel) -> WorkspaceOptions:
    """bc v1 in production, trained on the registered breast-cancer dataset (its lineage names it)."""
    options = WorkspaceOptions.from_settings(Settings(database_url=None), home)
    init_workspace(options)
    ws = open_workspace(options)
    try:
        bc_in_production(ws, sample, described=True)
    finally:
        ws.close()
    return options


def _extraction(cli: Cli, out: Path) -> dict[str, Any]:
    result = cli("redteam", "run", "--model", "bc", "--suite", "extraction", "--report-dir", str(out), "--json")
    report = json.loads((out / "report.json").read_text())
    [suite] = [s for s in report["suites"] if s["suite"] == "extraction"]
    return {"code": result.code, "suite": suite, "out": result.out + result.err}


def _finding(suite: dict[str, Any]) -> dict[str, Any]:
    [finding] = [f for f in suite["findings"] if f["id"] == "extraction.model-copied"]
    return dict(finding)


@pytest.mark.slow
def test_the_red_teams_extraction_raises_the_alert_under_the_default_rules(
    cli: Cli, served_home: WorkspaceOptions, tmp_path: Path
) -> None:
    """Default budget and rules: a >= 95% copy, and inference.extraction fired, so the finding is low, not high."""
    run = _extraction(cli, tmp_path / "report")
    metrics = run["suite"]["metrics"]
    assert metrics["queries"] == 600, run["out"]
    assert metrics["fidelity"] >= 0.95  # the attack still works: detection, not prevention
    assert metrics["alert"] == "fired", run["out"]
    assert _finding(run["suite"])["severity"] == "low"
    ws = open_workspace(served_home)
    try:
        from mlwarden.monitor.alerts_store import list_alerts

        [alert] = [a.alert for a in list_alerts(ws) if a.alert.rule == "inference.extraction"]
    finally:
        ws.close()
    assert (alert.details or {})["signals"] == ["off_shape"]
    assert alert.principal is not None
    assert alert.principal.startswith("token:")


@pytest.mark.slow
def test_without_the_off_shape_signal_the_same_run_is_a_high_finding(
    cli: Cli, served_home: WorkspaceOptions, tmp_path: Path
) -> None:
    """``off_shape: 0`` in policy.yaml: PSI and range alone miss the attack, as before this signal: high, not fired."""
    policy = served_home.paths.policy
    policy.write_text(policy.read_text() + "alerts:\n  inference.extraction: {off_shape: 0}\n")
    run = _extraction(cli, tmp_path / "report")
    assert run["suite"]["metrics"]["fidelity"] >= 0.95
    assert run["suite"]["metrics"]["alert"] == "not fired", run["out"]
    assert _finding(run["suite"])["severity"] == "high"
