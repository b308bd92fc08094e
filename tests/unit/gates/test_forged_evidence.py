"""`ledger record` cannot forge evidence: system kinds are refused, and user records never justify serving."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from fastapi.testclient import TestClient

from mlwarden.api.app import create_app
from mlwarden.config import Settings, WorkspaceOptions
from tests.unit.cli.conftest import Cli
from tests.unit.gates.conftest import POLICY, Zoo

PRODUCTION_APPROVALS_ONLY = POLICY.replace("    dataset: toy-eval\n", "").replace(
    "performance, fairness, vulnerabilities, approvals]", "approvals]"
)


def _forged_promotion(sha256: str) -> dict[str, object]:
    return {
        "from": "candidate",
        "to": "production",
        "sha256": sha256,
        "replaced": None,
        "gates": {"passed": True, "gate_run": 0, "gates": ["approvals"]},
    }


def _kinds(cli: Cli) -> list[str]:
    out = cli("ledger", "tail", "-n", "1000").out.splitlines()
    return [json.loads(line)["kind"] for line in out if line.startswith("{")]  # the gateway also logs to stdout


def test_forged_promotion_via_ledger_record_is_refused_and_never_served(
    cli: Cli, zoo: Zoo, home: Path, tmp_path: Path
) -> None:
    """`ledger record --kind model.promoted` exits 2 recording nothing; an external.* lookalike does not get served."""
    assert cli("init").code == 0
    (home / "policy.yaml").write_text(PRODUCTION_APPROVALS_ONLY)
    registered = cli("model", "register", "toy", str(zoo.good), "--card", str(zoo.card))
    assert registered.code == 0, registered.err
    sha = json.loads(registered.out)["sha256"]
    body = json.dumps(_forged_promotion(sha))
    before = _kinds(cli)

    forged = cli("ledger", "record", "--kind", "model.promoted", "--subject", "model:toy:1", "--body", body)
    assert forged.code == 2
    assert "model.promoted" in forged.err
    assert "external." in forged.err
    assert forged.err.count("\n") == 1
    batch = tmp_path / "forged.jsonl"
    batch.write_text(
        json.dumps({"kind": "external.note", "subject": "x", "body": {}})
        + "\n"
        + json.dumps({"kind": "model.rolled_back", "subject": "model:toy:1", "body": _forged_promotion(sha)})
        + "\n"
    )
    assert cli("ledger", "record", "--jsonl", str(batch)).code == 2
    for kind in ("token.created", "gate.run", "model.approved"):
        assert cli("ledger", "record", "--kind", kind, "--subject", "model:toy:1", "--body", "{}").code == 2
    assert _kinds(cli) == before  # nothing was recorded

    lookalike = cli("ledger", "record", "--kind", "promoted", "--subject", "model:toy:1", "--body", body)
    assert lookalike.code == 0, lookalike.err
    assert _kinds(cli)[-1] == "external.promoted"

    with sqlite3.connect(home / "mlwarden.db") as db:  # a database writer makes the candidate "production"
        db.execute("UPDATE model_versions SET stage = 'production' WHERE name = 'toy' AND version = 1")
    token = json.loads(cli("token", "create", "--name", "svc", "--scope", "inference:read").out)["token"]
    options = WorkspaceOptions.from_settings(Settings(database_url=None), home)
    app = create_app(options, Settings(database_url=None, gc_freeze=False, rate_limit=0))
    with TestClient(app) as client:
        response = client.post(
            "/v1/models/toy/predict",
            json={"inputs": [[0.1, 0.2, 0.3, 1.0]]},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 503, response.text
    assert "model.promoted" not in _kinds(cli)
    assert cli("model", "check").code == 1  # the ledger still says candidate
