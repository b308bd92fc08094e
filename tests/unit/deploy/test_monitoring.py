"""deploy/monitoring: rules pass promtool (syntax and unit tests); the dashboard uses only what we export."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from mlwarden.api.app import create_app
from mlwarden.config import Settings
from mlwarden.workspace import Workspace

ROOT = Path(__file__).parents[3]
MONITORING = ROOT / "deploy" / "monitoring"
RULES = MONITORING / "prometheus-rules.yaml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

NOT_FROM_THE_GATEWAY = {"up": "Prometheus's own scrape health"}
PENDING: dict[str, str] = {}
"""Metrics the rules may name before the gateway exports them (none today)."""
_METRIC = re.compile(r"\b(mlwarden_[a-z0-9_]+|up)\b(?!\s*\()")
_SUFFIXES = ("", "_total", "_bucket", "_sum", "_count", "_created")


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool not installed (Debian package prometheus)"
        if IN_CI:
            pytest.fail(f"{message}: in CI a skipped rules check is a failure")
        pytest.skip(message)
    return found


def _rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in doc["panels"] for target in panel["targets"]]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, check=False)


def test_promtool_accepts_the_rules_and_their_unit_tests() -> None:
    """`promtool check rules` and `promtool test rules`: alerts fire on the scripted series, and only then."""
    promtool = _promtool()
    checked = _run(promtool, "check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in checked.stdout
    tested = _run(promtool, "test", "rules", str(MONITORING / "prometheus-rules.test.yaml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_promtool_refuses_a_broken_rule(tmp_path: Path) -> None:
    """The check can fail: a rule with a PromQL syntax error is refused."""
    promtool = _promtool()
    broken = tmp_path / "rules.yaml"
    broken.write_text(RULES.read_text().replace("> 0.05", "> > 0.05", 1))
    assert _run(promtool, "check", "rules", str(broken)).returncode != 0


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Every panel query parses (checked by promtool as recording rules, with the $job variable filled in)."""
    promtool = _promtool()
    exprs = [e.replace("$job", ".*") for e in _dashboard_exprs()]
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"panel:{n}", "expr": e}
                                                           for n, e in enumerate(exprs)]}]}  # fmt: skip
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    checked = _run(promtool, "check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_rules_and_dashboard_are_well_formed() -> None:
    """Each alert has a severity the on-call routing knows and a summary; each panel a unique id and a query."""
    for rule in _rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
    doc = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in doc["panels"]]
    assert len(ids) == len(set(ids))
    assert doc["uid"]
    assert doc["title"]
    for panel in doc["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"]
        assert all(t["expr"] and t["refId"] for t in panel["targets"])
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"}


def _exported(text: str) -> set[str]:
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def _unknown(referenced: set[str], exported: set[str]) -> set[str]:
    def known(name: str) -> bool:
        return any(name.removesuffix(s) in exported or name in {e + s for e in exported} for s in _SUFFIXES)

    return {n for n in referenced if not known(n) and n not in NOT_FROM_THE_GATEWAY and n not in PENDING}


@pytest.mark.parametrize("backend", ["sqlite"])
def test_everything_referenced_is_exported_by_a_real_gateway(workspace: Workspace) -> None:
    """Scrape a real app's /metrics: every metric the rules and the dashboard use is there (or listed as pending)."""
    referenced = {m for e in _dashboard_exprs() + [r["expr"] for r in _rules()] for m in _METRIC.findall(e)}
    app = create_app(workspace.options, Settings(gc_freeze=False))
    with TestClient(app) as client:
        client.get("/healthz")
        text = client.get("/metrics").text
    exported = _exported(text)
    assert {"mlwarden_outbox_pending", "mlwarden_requests_total", "mlwarden_request_seconds"} <= exported
    assert _unknown(referenced, exported) == set()
    assert _unknown({"mlwarden_no_such_metric"}, exported) == {"mlwarden_no_such_metric"}  # the check can fail
    assert set(PENDING) <= referenced  # nothing pending that nothing uses
    assert "mlwarden_watch_lag_entries" in referenced & exported  # the watcher-lag rule watches a real gauge
