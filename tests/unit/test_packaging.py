"""The container image and the CI example: non-root, pinned, healthy; the workflow runs the gates and uploads SARIF."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[2]


def test_dockerfile_runs_as_a_non_root_user_on_a_pinned_slim_base() -> None:
    """FROM pins an exact slim patch release (optionally a digest); the final USER is numeric, not 0; HEALTHCHECK."""
    text = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^FROM\s+(\S+)", text, re.M)
    assert base is not None
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base.group(1)), base.group(1)
    assert "latest" not in base.group(1)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users, "no USER instruction"
    uid = users[-1].split(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0
    assert "HEALTHCHECK" in text
    assert "/healthz" in text


def test_github_workflow_runs_gates_trivy_pip_audit_and_uploads_sarif() -> None:
    """The example workflow gates the model, scans the image and dependencies, and uploads SARIF."""
    workflow = yaml.safe_load((ROOT / "examples" / "github-actions" / "model-gate.yml").read_text())
    steps = workflow["jobs"]["gate"]["steps"]
    text = yaml.safe_dump(steps)
    assert "mlwarden gate check" in text
    assert "aquasecurity/trivy-action" in text
    assert "pip-audit" in text
    assert any("upload-sarif" in str(s.get("uses", "")) for s in steps)
    assert workflow["permissions"]["security-events"] == "write"
