"""The container image and the CI example: non-root, pinned, healthy, lint-clean; the workflow gates safely."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
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


WORKFLOW = ROOT / "examples" / "github-actions" / "model-gate.yml"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _workflow_steps() -> list[dict[str, Any]]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps: list[dict[str, Any]] = workflow["jobs"]["gate"]["steps"]
    return steps


def test_workflow_installs_mlwarden_from_the_checkout_not_by_name() -> None:
    """No `pip install mlwarden…` from an index (a name anyone could register): the lock, then this checkout."""
    runs = "\n".join(str(step.get("run", "")) for step in _workflow_steps())
    assert not re.search(r"pip[^\n]* install[^\n]*\bmlwarden\b(?![^\n]*@ git\+)", runs)
    assert "--require-hashes" in runs
    assert re.search(r"pip\" install --no-deps[^\n]* \.$", runs, re.M)


def test_workflow_hides_no_failure() -> None:
    """No `|| true`, `continue-on-error` or `set +e`: a failing audit fails the job."""
    text = WORKFLOW.read_text()
    assert "|| true" not in text
    assert "continue-on-error" not in text
    assert "set +e" not in text
    audit = next(step for step in _workflow_steps() if "pip-audit" in str(step.get("run", "")))
    assert "if" not in audit


def test_workflow_pins_actions_by_commit_and_drops_credentials() -> None:
    """Every action is pinned by a 40-hex commit (tag in a comment); checkout keeps no credentials."""
    lines = [ln for ln in WORKFLOW.read_text().splitlines() if re.match(r"\s*(- )?uses:", ln)]
    assert lines
    for line in lines:
        assert re.search(r"uses: [\w.-]+/[\w./-]+@[0-9a-f]{40}\s+# v?\d+\.\d+\.\d+$", line), line
    checkout = next(s for s in _workflow_steps() if str(s.get("uses", "")).startswith("actions/checkout@"))
    assert checkout["with"]["persist-credentials"] is False


def test_workflow_never_expands_expressions_inside_scripts() -> None:
    """Untrusted values (the PR author's login) reach the shell through env:, never `${{ }}` inside run:."""
    for step in _workflow_steps():
        assert "${{" not in str(step.get("run", "")), step.get("name")
    gate = next(s for s in _workflow_steps() if "mlwarden gate check" in str(s.get("run", "")))
    assert "github.event.pull_request.user.login" in gate["env"]["PR_AUTHOR"]
    assert '"ci:$PR_AUTHOR"' in gate["run"]


def test_workflow_uses_signed_approvals() -> None:
    """Approvals reach the gate as signed files (--approval FILE), made with `model approve --sign-with KEY --out`."""
    text = WORKFLOW.read_text()
    assert "--sign-with" in text
    assert "--out approvals/" in text
    gate = next(s for s in _workflow_steps() if "mlwarden gate check" in str(s.get("run", "")))
    assert "--approval" in gate["run"]
    assert "--approver " not in gate["run"]


def _tool(name: str) -> str:
    """Path of a linter from the dev extra: this venv's bin, else PATH; skip locally, fail in CI."""
    found = Path(sys.executable).with_name(name)
    path = str(found) if found.exists() else shutil.which(name)
    if path is None:
        message = f"{name} not installed (it is in the dev extra: make .venv/.installed)"
        if IN_CI:
            pytest.fail(f"{message}: in CI a skipped linter is a failure")
        pytest.skip(message)
    return path


def test_workflow_passes_actionlint() -> None:
    """actionlint, with shellcheck over every run: script, finds nothing in the example."""
    shellcheck = _tool("shellcheck")
    result = subprocess.run(
        [_tool("actionlint"), "-no-color", "-shellcheck", shellcheck, str(WORKFLOW)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_container_entrypoint_passes_shellcheck() -> None:
    """docker/entrypoint.sh is POSIX sh that shellcheck finds nothing in."""
    result = subprocess.run(
        [_tool("shellcheck"), "--shell=sh", str(ROOT / "docker" / "entrypoint.sh")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflow_passes_zizmor() -> None:
    """zizmor (offline audits, every severity and confidence) finds nothing in the example."""
    result = subprocess.run(
        [_tool("zizmor"), "--offline", "--no-progress", "--persona", "pedantic", str(WORKFLOW)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_passes_hadolint() -> None:
    """hadolint finds no warning or error in the Dockerfile."""
    result = subprocess.run(
        [_tool("hadolint"), "--failure-threshold", "warning", str(ROOT / "Dockerfile")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def _dockerignored(patterns: list[str], path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides (``!`` re-includes)."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.strip().strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex, i = regex + pattern[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        if any(re.fullmatch(regex, c) for c in candidates):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_workspaces_keys_venvs_and_caches_out_of_the_context() -> None:
    """.venv, .git, .mlwarden, any keys, caches and test leftovers never reach the build context; the sources do."""
    patterns = [
        ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.strip() and not ln.startswith("#")
    ]
    for path in (
        ".venv/bin/python", ".git/config", ".mlwarden/keys/ledger.key", ".mlwarden/mlwarden.db",
        "src/mlwarden/.mlwarden/keys/ledger.key", "src/keys/ca.key", "src/mlwarden/server.pem", "deploy/ws/keys/x",
        "ledger.key", "src/mlwarden/__pycache__/x.cpython-311.pyc", ".pytest_cache/v", ".mypy_cache/x",
        ".ruff_cache/x", ".hypothesis/x", ".pg-test/data", "tests/unit/test_packaging.py", "bench/results/x.json",
        "src/mlwarden.egg-info/PKG-INFO", "build/lib/x.py", "approvals/bob.json",
    ):  # fmt: skip
        assert _dockerignored(patterns, path), path
    for path in (
        "pyproject.toml", "requirements.lock", "README.md", "src/mlwarden/__init__.py",
        "src/mlwarden/store/migrations/env.py", "docker/entrypoint.sh",
    ):  # fmt: skip
        assert not _dockerignored(patterns, path), path
    copied = re.findall(r"^COPY (?:--\S+ )*(\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert copied
    for source in copied:
        assert not _dockerignored(patterns, source), f"Dockerfile copies {source}, which .dockerignore drops"


def test_image_initialises_a_fresh_volume_and_probes_the_local_health_port() -> None:
    """The entry point inits an empty volume; HEALTHCHECK asks the plain health port that serve opens."""
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["mlwarden-entrypoint"\]', text, re.M)
    assert "docker/entrypoint.sh /usr/local/bin/mlwarden-entrypoint" in text
    cmd = re.search(r"^CMD (\[.*\])$", text, re.M)
    assert cmd is not None
    args = yaml.safe_load(cmd.group(1))
    health_port = args[args.index("--health-port") + 1]
    assert f"http://127.0.0.1:{health_port}/healthz" in text
    assert re.search(r"^FROM \S+@sha256:[0-9a-f]{64}$", text, re.M)
    entrypoint = (ROOT / "docker" / "entrypoint.sh").read_text()
    assert "init" in entrypoint
    assert 'exec "$mlwarden" "$@"' in entrypoint
