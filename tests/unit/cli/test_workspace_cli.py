"""init and demo as a new user runs them, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mlwarden.config import WorkspaceOptions
from tests.unit.cli.conftest import Cli


def test_demo_tours_the_ledger_and_catches_the_tampering(cli: Cli) -> None:
    """make run's demo records, checkpoints, proves, verifies, and names the edited entry."""
    result = cli("demo", "--entries", "64", use_home=False)
    assert result.code == 0, result.err
    assert "checkpoint" in result.out
    assert "verified" in result.out
    assert "changed at index 32" in result.out
    assert "dangerous imports posix.system" in result.out
    assert "backdoor trigger" in result.out
    assert "403 application/problem+json" in result.out
    assert "429 Retry-After" in result.out
    assert re.search(r"fairness\s+FAIL", result.out)
    assert "group 1.0: selection rate" in result.out
    assert "size" in result.out
    assert ": verified" in result.out.split("== 21.")[1]
    erasure = result.out.split("== 22.")[1]
    assert "sealed inputs open for the workspace: [" in erasure
    assert "2 data key(s) destroyed" in erasure
    erased_at = int(re.search(r"erasure recorded at ledger index (\d+)", erasure).group(1))  # type: ignore[union-attr]
    assert f"inputs: {{'erased': True, 'erasure_index': {erased_at}}}" in erasure
    assert "ok=True" in erasure.split("== 25.")[1]
    assert f"2 erased (2 by the erasure at index {erased_at}), 0 problem(s)" in erasure  # inputs, outputs
    watched = result.out.split("== 26.")[1]
    assert "extraction: [high] inference.extraction:" in watched
    assert "credential stuffing: [high] auth.failure_burst: 40 failed authentications" in watched
    delivered = watched.split("== 27.")[1].split("== 28.")[0]
    assert re.search(
        r"received '40 failed authentications .*' \(class 2004, severity High\), signature verified", delivered
    )
    assert "no defence failed; report: " in watched.split("== 28.")[1]
    assert re.search(
        r"http://127\.0\.0\.1:8000/ui/\n   sign in with this token \(shown once\): mlw_[0-9a-f]{16}_", result.out
    )


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
def test_cli_on_postgresql(cli: Cli, workspace_options: WorkspaceOptions, monkeypatch: pytest.MonkeyPatch) -> None:
    """MLWARDEN_DATABASE_URL selects PostgreSQL for init, record, proofs and verify."""
    monkeypatch.setenv("MLWARDEN_DATABASE_URL", workspace_options.database_url)
    home = str(workspace_options.paths.home)
    info = cli("--home", home, "init", "--json", use_home=False)
    assert info.code == 0, info.err
    assert json.loads(info.out)["database"].startswith("postgresql+psycopg://")
    for i in range(5):
        result = cli(
            "--home", home, "ledger", "record", "--kind", "k", "--subject", f"s{i}", "--body", "{}", use_home=False
        )
        assert result.json_lines() == [{"index": i, "leaf_hash": result.json_lines()[0]["leaf_hash"]}]
    assert not (workspace_options.paths.home / "mlwarden.db").exists()
    proof = cli("--home", home, "ledger", "proof", "inclusion", "2", use_home=False)
    assert json.loads(proof.out)["tree_size"] == 5
    verified = cli("--home", home, "ledger", "verify", "--json", use_home=False)
    assert (verified.code, json.loads(verified.out)["ok"]) == (0, True)


def test_unreachable_database_is_one_line_exit_3(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database that cannot be reached is reported in one line with exit code 3."""
    monkeypatch.setenv("MLWARDEN_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    result = cli("init")
    assert result.code == 3
    assert result.err.startswith("error: cannot initialise the database")
    assert result.err.count("\n") == 1


@pytest.mark.parametrize("url", ["mysql://h/db", "not a url"])
def test_unsupported_database_url_is_a_usage_error(cli: Cli, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """Only SQLite and PostgreSQL URLs are accepted."""
    monkeypatch.setenv("MLWARDEN_DATABASE_URL", url)
    result = cli("init")
    assert result.code == 2
    assert "MLWARDEN_DATABASE_URL" in result.err or "unsupported database" in result.err


def test_token_certs_and_policy_commands(cli: Cli, home: Path, tmp_path: Path) -> None:
    """token create/list/revoke, certs init/issue and policy export istio from the command line."""
    import yaml

    cli("init")
    made = cli("token", "create", "--name", "svc", "--scope", "inference:read", "--model", "bc", "--expires", "30d")
    assert made.code == 0, made.err
    token = json.loads(made.out)
    assert token["token"].startswith(f"mlw_{token['id']}_")
    assert "cannot be shown again" in made.err
    listed = cli("token", "list").json_lines()
    assert [t["id"] for t in listed] == [token["id"]]
    assert token["token"].rsplit("_", 1)[1] not in cli("token", "list").out
    assert json.loads(cli("token", "revoke", token["id"]).out)["state"] == "revoked"
    assert cli("token", "create", "--name", "x", "--scope", "root").code == 2
    assert cli("token", "create", "--name", "x", "--scope", "admin", "--expires", "soon").code == 2
    assert cli("certs", "init").code == 0
    issued = cli("certs", "issue", "scorer", "--spiffe-id", "spiffe://example.org/sa/scorer", "--out", str(tmp_path))
    assert issued.code == 0, issued.err
    assert (tmp_path / "scorer.pem").exists()
    assert cli("certs", "issue", "bad", "--spiffe-id", "https://nope", "--out", str(tmp_path)).code == 2
    (home / "policy.yaml").write_text(
        "spiffe:\n  - id: spiffe://example.org/sa/scorer\n    scopes: [inference:read, audit:read]\n    models: [bc]\n"
    )
    exported = yaml.safe_load(cli("policy", "export", "istio").out)
    assert exported["kind"] == "AuthorizationPolicy"
    rule = exported["spec"]["rules"][0]
    assert rule["from"][0]["source"]["principals"] == ["example.org/sa/scorer"]
    assert "/v1/models/bc/predict" in rule["to"][0]["operation"]["paths"]
    ledger = [line["kind"] for line in cli("ledger", "tail", "-n", "10").json_lines()]
    assert "token.created" in ledger
    assert "token.revoked" in ledger
