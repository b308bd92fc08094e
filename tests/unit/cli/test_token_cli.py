"""``token create`` on the workspace's machine is the bootstrap: it grants anything; the API holds to grants."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from mlwarden.api.app import create_app
from mlwarden.config import Settings, WorkspaceOptions
from tests.unit.cli.conftest import Cli


def test_cli_token_create_is_the_bootstrap(cli: Cli, home: Path) -> None:
    """The CLI mints an admin granting admin and model:promote; over HTTP that admin mints within it, not beyond."""
    assert cli("init").code == 0
    made = cli("token", "create", "--name", "ops", "--scope", "admin", "--grant", "admin", "--grant", "model:promote")
    assert made.code == 0, made.err
    ops = json.loads(made.out)
    assert ops["grant"] == ["admin", "model:promote"]
    created = [e for e in cli("ledger", "tail", "-n", "1").json_lines() if e["kind"] == "token.created"]
    assert created[0]["body"]["grant"] == ["admin", "model:promote"]
    settings = Settings(database_url=None, auth_cache_seconds=0, rate_limit=0, gc_freeze=False)
    with TestClient(create_app(WorkspaceOptions.from_settings(settings, home), settings)) as client:
        auth = {"Authorization": f"Bearer {ops['token']}"}
        ok = client.post("/v1/admin/tokens", json={"name": "rel", "scopes": ["model:promote"]}, headers=auth)
        assert ok.status_code == 201, ok.text
        wider = {"name": "a", "scopes": ["admin"], "grant": ["model:promote", "audit:read"]}
        refused = client.post("/v1/admin/tokens", json=wider, headers=auth)
        assert refused.status_code == 403
        assert "audit:read" in refused.json()["detail"]


def test_cli_token_create_refuses_bad_grants_and_model_lists(cli: Cli) -> None:
    """--grant without admin, an unknown grant scope and an empty model name are usage errors (exit 2, one line)."""
    assert cli("init").code == 0
    for args in (
        ["--scope", "audit:read", "--grant", "audit:read"],
        ["--scope", "admin", "--grant", "root"],
        ["--scope", "inference:read", "--model", ""],
    ):
        result = cli("token", "create", "--name", "x", *args)
        assert result.code == 2, (args, result.out)
        assert result.err.startswith("error: ")
        assert result.err.count("\n") == 1
    assert cli("token", "list").json_lines() == []


def test_token_create_help_documents_the_default_grant(cli: Cli) -> None:
    """`token create --help` says what an admin may grant without --grant."""
    result = cli("token", "create", "--help")
    text = " ".join(result.out.replace("│", " ").split())  # rich wraps options in a box
    assert "--grant" in text
    assert "inference:read, feedback:write, data:read and audit:read" in text
