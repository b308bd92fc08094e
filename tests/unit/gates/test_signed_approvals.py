"""Four eyes means two authenticated people: OS accounts from the uid, and approvals signed with listed keys."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.identity.approvers import load_approvers
from mlwarden.identity.personal_keys import CreatedKey, create_personal_key, load_personal_key
from mlwarden.identity.statements import SignedStatement, new_statement, sign_statement, verify_statement
from mlwarden.store.schema import approvals
from mlwarden.workspace import open_workspace
from tests.support.cli import Cli, Result
from tests.unit.gates.conftest import POLICY, Zoo

ME = f"local:{pwd.getpwuid(os.getuid()).pw_name}"
SIMPLE_POLICY = POLICY.replace("    dataset: toy-eval\n", "").replace(
    "performance, fairness, vulnerabilities, approvals]", "approvals]"
)


def _cli_as(home: Path, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess with every user-name variable set to ``user``."""
    env = {**os.environ, "USER": user, "LOGNAME": user, "LNAME": user, "USERNAME": user}
    env.pop("MLWARDEN_DATABASE_URL", None)
    command = [sys.executable, "-m", "mlwarden.cli", "--home", str(home), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, check=False)


def _workspace(cli: Cli, home: Path, zoo: Zoo, approvers: str = "") -> None:
    assert cli("init").code == 0
    (home / "policy.yaml").write_text(SIMPLE_POLICY + (f"approvers:\n{approvers}\n" if approvers else ""))
    assert cli("dataset", "register", "toy-train", str(zoo.train_csv)).code == 0
    assert cli("model", "register", "toy", str(zoo.good), "--card", str(zoo.card)).code == 0


def _entries(home: Path, kind: str) -> list[tuple[str, dict[str, object]]]:
    ws = open_workspace(WorkspaceOptions.from_settings(Settings(database_url=None), home))
    try:
        return [(e.principal, e.body) for e in (s.parse() for s in ws.log.find(kind, "model:toy:1"))]
    finally:
        ws.close()


def _promote(cli: Cli) -> Result:
    return cli("model", "promote", "toy", "1", "--to", "production")


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, CreatedKey]:
    return {name: create_personal_key(name, tmp_path / "keys") for name in ("alice", "bob", "mallory")}


def test_user_and_logname_do_not_change_the_cli_principal(cli: Cli, zoo: Zoo, home: Path) -> None:
    """USER/LOGNAME=bob in a subprocess: still recorded as the real OS account, so self-approval does not count."""
    assert cli("init").code == 0
    (home / "policy.yaml").write_text(SIMPLE_POLICY)
    assert cli("dataset", "register", "toy-train", str(zoo.train_csv)).code == 0
    registered = _cli_as(home, "alice", "model", "register", "toy", str(zoo.good), "--card", str(zoo.card))
    assert registered.returncode == 0, registered.stderr
    approved = _cli_as(home, "bob", "model", "approve", "toy:1")
    assert approved.returncode == 0, approved.stderr
    assert "does not count" in approved.stdout
    assert [p for p, _ in _entries(home, "model.registered")] == [ME]
    assert [p for p, _ in _entries(home, "model.approved")] == [ME]
    assert ME not in ("local:alice", "local:bob")
    refused = _promote(cli)
    assert refused.code == 1
    assert "registrant's own approval does not count" in refused.out


def test_signed_approval_is_recorded_verifiable_and_counted(
    cli: Cli, zoo: Zoo, home: Path, keys: dict[str, CreatedKey]
) -> None:
    """--sign-with a listed key records key:bob with the statement in the entry; it re-verifies and counts."""
    _workspace(cli, home, zoo, keys["bob"].policy_line(("local:bob-laptop",)))
    assert _promote(cli).code == 1
    result = cli("model", "approve", "toy:1", "--sign-with", str(keys["bob"].private_key), "--comment", "looks fine")
    assert result.code == 0, result.err
    assert result.json_lines()[0]["approved_by"] == "key:bob"
    [(principal, body)] = _entries(home, "model.approved")
    assert principal == "key:bob"
    assert body["submitted_by"] == ME
    signed = SignedStatement.from_json(body["statement"])
    sha = hashlib.sha256(zoo.good.read_bytes()).hexdigest()
    expected = {"action": "model.approve", "model": "toy", "version": 1, "sha256": sha}
    now = datetime.now(UTC)
    assert verify_statement(signed, load_approvers(home / "policy.yaml"), expected=expected, now=now).name == "bob"
    assert signed.statement["comment"] == "looks fine"
    promoted = _promote(cli)
    assert promoted.code == 0, promoted.out + promoted.err


def test_the_registrants_own_key_does_not_count(cli: Cli, zoo: Zoo, home: Path, keys: dict[str, CreatedKey]) -> None:
    """A key whose approver lists the registrant's account is the same person: recorded, never counted."""
    _workspace(cli, home, zoo, keys["alice"].policy_line((ME,)))
    result = cli("model", "approve", "toy:1", "--sign-with", str(keys["alice"].private_key))
    assert result.code == 0, result.err
    assert "does not count" in result.json_lines()[0]["note"]
    refused = _promote(cli)
    assert refused.code == 1
    assert "registrant's own approval does not count" in refused.out


def _statement(
    key: CreatedKey, approver: str, sha: str, *, version: int = 1, age: timedelta = timedelta()
) -> dict[str, Any]:
    now = datetime.now(UTC) - age
    return sign_statement(
        new_statement("model.approve", approver, now, timedelta(days=1), model="toy", version=version, sha256=sha),
        load_personal_key(key.private_key),
    ).to_json()


@pytest.mark.parametrize("attack", ["forged", "wrong-key", "unlisted", "wrong-sha", "wrong-version", "expired"])
def test_bad_approval_files_are_refused_and_recorded(
    cli: Cli, zoo: Zoo, home: Path, tmp_path: Path, keys: dict[str, CreatedKey], attack: str
) -> None:
    """Forged, wrong-key, unlisted, other-sha, other-version and expired statements: exit 1, a recorded refusal."""
    _workspace(cli, home, zoo, keys["bob"].policy_line(()))
    good_sha = hashlib.sha256(zoo.good.read_bytes()).hexdigest()
    other_sha = hashlib.sha256(zoo.biased.read_bytes()).hexdigest()
    doc = {
        "forged": _statement(keys["bob"], "bob", good_sha),
        "wrong-key": _statement(keys["mallory"], "bob", good_sha),
        "unlisted": _statement(keys["mallory"], "mallory", good_sha),
        "wrong-sha": _statement(keys["bob"], "bob", other_sha),
        "wrong-version": _statement(keys["bob"], "bob", good_sha, version=2),
        "expired": _statement(keys["bob"], "bob", good_sha, age=timedelta(days=3)),
    }[attack]
    if attack == "forged":
        doc["statement"]["model"] = "toy"
        doc["statement"]["comment"] = "added after signing"
    path = tmp_path / "approval.json"
    path.write_text(json.dumps(doc))
    result = cli("model", "approve", "toy:1", "--approval", str(path))
    assert result.code == 1, (attack, result.out, result.err)
    assert result.err.count("\n") == 1
    assert [p for p, _ in _entries(home, "model.approved")] == []
    [(principal, body)] = _entries(home, "model.approval_refused")
    assert principal == ME
    assert body["statement"] == doc
    assert _promote(cli).code == 1


def test_signing_with_an_unlisted_key_is_a_recorded_refusal(
    cli: Cli, zoo: Zoo, home: Path, keys: dict[str, CreatedKey]
) -> None:
    """--sign-with a key the policy does not list: exit 1 and a model.approval_refused entry."""
    _workspace(cli, home, zoo, keys["bob"].policy_line(()))
    result = cli("model", "approve", "toy:1", "--sign-with", str(keys["mallory"].private_key))
    assert result.code == 1
    assert "not listed" in result.err
    assert len(_entries(home, "model.approval_refused")) == 1


def test_a_key_removed_from_the_policy_no_longer_counts(
    cli: Cli, zoo: Zoo, home: Path, keys: dict[str, CreatedKey]
) -> None:
    """Signed approvals are re-verified at every gate run against the policy's current keys."""
    _workspace(cli, home, zoo, keys["bob"].policy_line(()))
    assert cli("model", "approve", "toy:1", "--sign-with", str(keys["bob"].private_key)).code == 0
    (home / "policy.yaml").write_text(SIMPLE_POLICY + f"approvers:\n{keys['mallory'].policy_line(())}\n")
    refused = _promote(cli)
    assert refused.code == 1
    assert "0 of 1 approval" in refused.out


def test_a_key_approval_row_without_its_signed_statement_does_not_count(
    cli: Cli, zoo: Zoo, home: Path, keys: dict[str, CreatedKey]
) -> None:
    """An approvals row for key:bob planted in the database, with no signed statement in the ledger, is ignored."""
    _workspace(cli, home, zoo, keys["bob"].policy_line(()))
    ws = open_workspace(WorkspaceOptions.from_settings(Settings(database_url=None), home))
    try:
        with ws.engine.begin() as conn:
            conn.execute(
                insert(approvals).values(name="toy", version=1, principal="key:bob", created="2025-01-01T00:00:00Z")
            )
    finally:
        ws.close()
    assert _promote(cli).code == 1


def test_approval_flag_options_are_checked(cli: Cli, zoo: Zoo, home: Path, keys: dict[str, CreatedKey]) -> None:
    """--sign-with with --approval, or --out without --sign-with, is bad input (exit 2)."""
    _workspace(cli, home, zoo, keys["bob"].policy_line(()))
    both = cli("model", "approve", "toy:1", "--sign-with", str(keys["bob"].private_key), "--approval", "x.json")
    assert both.code == 2
    assert cli("model", "approve", "toy:1", "--out", "x.json").code == 2
    assert cli("model", "approve", "toy").code == 2
    assert cli("model", "approve", "toy", "1").code == 0  # NAME VERSION still works


def test_gate_check_takes_signed_approvals_not_names(
    cli: Cli, zoo: Zoo, tmp_path: Path, keys: dict[str, CreatedKey]
) -> None:
    """CI: --approver NAME is refused (exit 2); --approval must be signed by a listed key for these very bytes."""
    policy = tmp_path / "ci-policy.yaml"
    policy.write_text(
        "stages: {production: {gates: [approvals]}}\n"
        f"approvers:\n{keys['bob'].policy_line(('ci:bob',))}\n{keys['alice'].policy_line(('ci:alice',))}\n"
    )

    def check(*extra: str) -> Result:
        return cli("gate", "check", str(zoo.good), "--policy", str(policy), "--registrant", "ci:alice", *extra,
                   use_home=False)  # fmt: skip

    named = check("--approver", "bob")
    assert named.code == 2
    assert "--approval" in named.err

    def signed(key: str, artifact: Path) -> str:
        out = tmp_path / f"{key}-{artifact.stem}.json"
        made = cli("model", "approve", "toy:1", "--sign-with", str(keys[key].private_key), "--out", str(out),
                   "--artifact", str(artifact), "--policy", str(policy), use_home=False)  # fmt: skip
        assert made.code == 0, made.err
        return str(out)

    assert check().code == 1
    assert check("--approval", signed("alice", zoo.good)).code == 1  # the registrant's own key
    other = check("--approval", signed("bob", zoo.biased))
    assert other.code == 1
    assert "sha256" in other.err
    passed = check("--approval", signed("bob", zoo.good))
    assert passed.code == 0, passed.out + passed.err
    assert "key:bob" in passed.out
