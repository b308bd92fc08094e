"""The scheduling examples: a CronJob valid for its API (strictly, offline), a workflow the linters pass."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.unit.deploy.manifests import InvalidManifest, validate
from tests.unit.test_packaging import _tool

ROOT = Path(__file__).resolve().parents[3]
CRONJOB = ROOT / "examples" / "kubernetes" / "redteam-cronjob.yaml"
WORKFLOW = ROOT / "examples" / "github-actions" / "redteam.yml"


def _docs() -> list[dict[str, object]]:
    return [d for d in yaml.safe_load_all(CRONJOB.read_text()) if d is not None]


def test_the_cronjob_and_its_service_account_are_valid_for_their_api() -> None:
    """Every document validates against the Kubernetes schemas (unknown fields refused)."""
    docs = _docs()
    assert [d["kind"] for d in docs] == ["CronJob", "ServiceAccount"]
    for doc in docs:
        validate(doc)


def test_a_broken_cronjob_is_refused() -> None:
    """The validation can fail: a misspelt field in the pod template is refused."""
    doc = copy.deepcopy(_docs()[0])
    doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolcy"] = "Never"  # type: ignore[index]
    with pytest.raises(InvalidManifest):
        validate(doc)


def test_the_cronjob_attacks_by_url_with_tokens_from_a_secret_only() -> None:
    """No workspace, no key, no database: `redteam run --url`, tokens from secretKeyRef, never literal values."""
    text = CRONJOB.read_text()
    pod = _docs()[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]  # type: ignore[index]
    container = pod["containers"][0]
    assert container["command"][:4] == ["mlwarden", "redteam", "run", "--url"]
    tokens = [e for e in container["env"] if e["name"].startswith("MLWARDEN_REDTEAM_")]
    assert tokens
    assert all("valueFrom" in e and "value" not in e for e in tokens)
    assert "mlw_" not in text
    assert "MLWARDEN_DATABASE_URL" not in text
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_workflow_passes_actionlint_and_zizmor() -> None:
    """actionlint (with shellcheck) and zizmor (pedantic, offline) find nothing."""
    for command in (
        [_tool("actionlint"), "-no-color", "-shellcheck", _tool("shellcheck"), str(WORKFLOW)],
        [_tool("zizmor"), "--offline", "--no-progress", "--persona", "pedantic", str(WORKFLOW)],
    ):
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_workflow_passes_tokens_only_through_env_and_pins_actions() -> None:
    text = WORKFLOW.read_text()
    assert "--token" not in text
    assert re.search(r"MLWARDEN_REDTEAM_TOKEN: \$\{\{ secrets\.", text)
    for line in (ln for ln in text.splitlines() if re.match(r"\s*(- )?uses:", ln)):
        assert re.search(r"@[0-9a-f]{40}\s+#", line), line
