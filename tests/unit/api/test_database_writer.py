"""The database writer: someone who can write every table but holds no workspace key.

Each test performs one attack with SQL against a real workspace behind a real gateway and
shows it refused where it is used (401/503 problem+json), recorded in the ledger, and named
by ``mlwarden ledger verify`` (exit 1) or ``mlwarden model check``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select, update

from mlwarden.api.app import create_app
from mlwarden.config import Settings
from mlwarden.errors import IntegrityError
from mlwarden.identity.tokens import create_token, parse_token, revoke_token
from mlwarden.ledger.entry import Entry
from mlwarden.store.schema import ledger_entries, ledger_refs, meta, model_versions, privacy_rows, tokens
from mlwarden.trust.follower import SNAPSHOT_KEY, StateFollower
from tests.support.cli import Cli
from tests.unit.api.conftest import Env


def _id(token: str) -> str:
    return parse_token(token).token_id


def _set(env: Env, table: Any, where: Any, **values: Any) -> None:
    with env.ws.engine.begin() as conn:
        conn.execute(update(table).where(where).values(**values))


def _kinds_since(env: Env, size: int) -> list[Entry]:
    return [e.parse() for e in env.ws.log.tail(env.ws.log.size() - size)]


def _verify_names(cli: Cli, needle: str) -> None:
    result = cli("ledger", "verify")
    assert result.code == 1, (result.out, result.err)
    assert needle in result.err, result.err
    as_json = cli("ledger", "verify", "--json").json_lines()[0]
    assert as_json["ok"] is False
    assert any(needle == f"{r['table']} row {r['row']}" for r in as_json["rows"]), as_json["rows"]


def _refused_401(env: Env, response: Any, size: int) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "changed outside mlwarden" in response.json()["detail"]
    assert env.ws.log.size() == size  # unauthenticated: counted in the window's summary, not a write of its own
    reasons = env.client.app.state.rejections.summary.peek()["reasons"]  # type: ignore[attr-defined]
    assert any("changed outside mlwarden" in reason for reason in reasons), reasons


def test_an_honest_workspace_verifies(env: Env, cli: Cli) -> None:
    """No false alarm: every row agrees with the ledger, and verify says so."""
    result = cli("ledger", "verify")
    assert result.code == 0, result.err
    assert "enforced state intact" in result.out


@pytest.mark.parametrize(
    ("token", "values", "request_"),
    [
        ("inference:read", {"scopes": '["inference:read","admin"]'}, ("GET", "/v1/admin/tokens")),
        ("other-model", {"models": "null"}, ("POST", "/v1/models/bc/predict")),
        ("other-model", {"models": '["other","bc"]'}, ("POST", "/v1/models/bc/predict")),
        ("expired", {"expires": None}, ("GET", "/v1/admin/tokens")),
        ("expired", {"expires": "2999-01-01T00:00:00.000000Z"}, ("GET", "/v1/admin/tokens")),
        ("revoked", {"revoked": None}, ("GET", "/v1/admin/tokens")),
        ("audit:read", {"created_by": "local:root"}, ("GET", "/v1/ledger/checkpoint")),
    ],
)
def test_token_rows_changed_by_sql_are_refused(
    env: Env, cli: Cli, token: str, values: dict[str, Any], request_: tuple[str, str]
) -> None:
    """Widened scopes or models, revived expired or revoked tokens: 401, recorded, named by verify."""
    secret = env.tokens[token]
    _set(env, tokens, tokens.c.id == _id(secret), **values)
    size = env.ws.log.size()
    method, path = request_
    body: Any = {"inputs": env.rows(1)} if method == "POST" else None
    _refused_401(env, env.client.request(method, path, headers=env.headers(secret), json=body), size)
    _verify_names(cli, f"tokens row {_id(secret)}")


def test_revoked_token_row_restored_from_a_backup_is_refused(env: Env, cli: Cli) -> None:
    """Replaying the row as it was before revocation (valid then) does not revive the token."""
    token, record = create_token(env.ws, name="replayed", scopes=["admin"], principal="admin")
    with env.ws.engine.connect() as conn:
        before = dict(conn.execute(select(tokens).where(tokens.c.id == record.token_id)).mappings().one())
    assert env.client.get("/v1/admin/tokens", headers=env.headers(token)).status_code == 200
    revoke_token(env.ws, record.token_id, "admin")
    _set(env, tokens, tokens.c.id == record.token_id, **{k: v for k, v in before.items() if k != "id"})
    size = env.ws.log.size()
    _refused_401(env, env.client.get("/v1/admin/tokens", headers=env.headers(token)), size)
    _verify_names(cli, f"tokens row {record.token_id}")


def test_planted_tokens_authenticate_no_one(env: Env, cli: Cli) -> None:
    """A row the writer inserts, or a known secret's hash copied onto an admin's row, opens nothing."""
    known = env.tokens["data:read"]
    known_id, known_secret = _id(known), parse_token(known).secret
    with env.ws.engine.connect() as conn:
        known_hash = conn.execute(select(tokens.c.secret_hash).where(tokens.c.id == known_id)).scalar_one()
    planted_id = "00112233445566ff"
    with env.ws.engine.begin() as conn:
        conn.execute(
            insert(tokens).values(
                id=planted_id, name="planted", secret_hash=hashlib.sha256(known_secret.encode()).hexdigest(),
                scopes='["admin"]', models="null", created="2026-01-01T00:00:00.000000Z", expires=None,
                revoked=None, created_by="local:root",
            )
        )  # fmt: skip
    admin_id = _id(env.tokens["admin"])
    _set(env, tokens, tokens.c.id == admin_id, secret_hash=known_hash)
    for forged in (f"mlw_{planted_id}_{known_secret}", f"mlw_{admin_id}_{known_secret}"):
        response = env.client.get("/v1/admin/tokens", headers=env.headers(forged))
        assert response.status_code == 401, response.text
        assert response.json()["detail"] == "token is not valid"
    _verify_names(cli, f"tokens row {planted_id}")


def test_loosened_input_signature_is_refused(env: Env, cli: Cli) -> None:
    """Widening a served version's input signature breaks its signature: 503, recorded, named by model check."""
    with env.ws.engine.connect() as conn:
        stored = conn.execute(
            select(model_versions.c.input_signature).where(model_versions.c.name == "bc", model_versions.c.version == 1)
        ).scalar_one()
    loosened = json.loads(stored)
    loosened["allow_nan"] = True
    loosened["features"] = loosened.get("features", [])[:1]
    _set(env, model_versions, (model_versions.c.name == "bc") & (model_versions.c.version == 1),
         input_signature=json.dumps(loosened))  # fmt: skip
    size = env.ws.log.size()
    response = env.client.post(
        "/v1/models/bc/predict", json={"inputs": env.rows(1)}, headers=env.headers(env.tokens["inference:read"])
    )
    assert response.status_code == 503, response.text
    assert response.json()["type"] == "urn:mlwarden:problem:model-unavailable"
    assert "model.integrity_failed" in [e.kind for e in _kinds_since(env, size)]
    check = cli("model", "check")
    assert check.code == 1
    assert any(item["row"] == "model:bc:1" for item in check.json_lines())
    _verify_names(cli, "model_versions row model:bc:1")


def _predict(env: Env) -> tuple[str, int]:
    response = env.client.post(
        "/v1/models/bc/predict", json={"inputs": env.rows(1)}, headers=env.headers(env.tokens["inference:read"])
    )
    assert response.status_code == 200, response.text
    return str(response.json()["decision_ids"][0]), int(response.json()["ledger_index"])


def test_decision_index_pointed_at_another_decision_is_refused(env: Env, cli: Cli) -> None:
    """A decision id re-pointed to another entry is caught: the entry must record that decision.

    A sealed prediction's decision is indexed by its payload row (``privacy_rows.ledger_index``) only.
    """
    first, _ = _predict(env)
    _second, second_index = _predict(env)
    with env.ws.engine.connect() as conn:
        assert conn.execute(select(ledger_refs).where(ledger_refs.c.ref == first)).first() is None
    _set(env, privacy_rows, privacy_rows.c.decision_id == first, ledger_index=second_index)
    assert env.ws.log.find_ref(first) == second_index
    size = env.ws.log.size()
    response = env.client.get(f"/v1/decisions/{first}", headers=env.headers(env.tokens["audit:read"]))
    assert response.status_code == 503, response.text
    assert response.json()["type"] == "urn:mlwarden:problem:integrity-failure"
    assert "ledger.index_tampered" in [e.kind for e in _kinds_since(env, size)]
    _verify_names(cli, f"privacy_rows row {first}")


def test_a_sealed_decisions_index_cleared_is_named(env: Env, cli: Cli) -> None:
    """Clearing a sealed row's index hides the decision from lookups: verify names the row."""
    decision, _ = _predict(env)
    _set(env, privacy_rows, privacy_rows.c.decision_id == decision, ledger_index=None)
    response = env.client.get(f"/v1/decisions/{decision}", headers=env.headers(env.tokens["audit:read"]))
    assert response.status_code == 404, response.text
    _verify_names(cli, f"privacy_rows row {decision}")


def test_a_reference_added_for_a_sealed_decision_is_named(env: Env, cli: Cli) -> None:
    """A ``ledger_refs`` row slipped in for a decision (which has none) and pointed elsewhere is named by verify."""
    first, first_index = _predict(env)
    _second, second_index = _predict(env)
    with env.ws.engine.begin() as conn:
        conn.execute(insert(ledger_refs).values(ref=first, idx=second_index))
    assert env.ws.log.find_ref(first) == first_index  # the sealed row's index comes first
    response = env.client.get(f"/v1/decisions/{first}", headers=env.headers(env.tokens["audit:read"]))
    assert response.status_code == 200, response.text
    _verify_names(cli, f"ledger_refs row {first}")


def test_decision_entry_rewritten_in_place_is_refused(env: Env) -> None:
    """The returned entry is proven against the signed head, so a rewritten one is never answered."""
    decision, index = _predict(env)
    with env.ws.engine.connect() as conn:
        text = conn.execute(select(ledger_entries.c.entry).where(ledger_entries.c.idx == index)).scalar_one()
    _set(env, ledger_entries, ledger_entries.c.idx == index, entry=text.replace('"v":2', '"v":2,"x":1'))
    response = env.client.get(f"/v1/decisions/{decision}", headers=env.headers(env.tokens["audit:read"]))
    assert response.status_code == 503, response.text
    assert response.json()["type"] == "urn:mlwarden:problem:integrity-failure"
    assert "signed head" in response.json()["detail"]
    assert decision not in response.text


def test_kind_and_subject_columns_steer_no_lookup(env: Env, cli: Cli) -> None:
    """Renaming a revocation's kind or a promotion's subject column hides nothing; verify names both rows."""
    with env.ws.engine.connect() as conn:
        revoked_at = conn.execute(select(ledger_entries.c.idx).where(ledger_entries.c.kind == "token.revoked")).scalar()
        promoted_at = conn.execute(
            select(ledger_entries.c.idx).where(
                ledger_entries.c.kind == "model.promoted", ledger_entries.c.subject == "model:bc:1"
            )
        ).scalar()
    _set(env, ledger_entries, ledger_entries.c.idx == revoked_at, kind="prediction")
    _set(env, ledger_entries, ledger_entries.c.idx == promoted_at, subject="model:bc:99")
    response = env.client.get("/v1/admin/tokens", headers=env.headers(env.tokens["revoked"]))
    assert response.status_code == 401
    assert response.json()["detail"] == "token is revoked"
    _, _index = _predict(env)  # still served: the promotion is read from its text
    result = cli("ledger", "verify", "--json").json_lines()[0]
    named = {(r["table"], r["row"]) for r in result["rows"]}
    assert {("ledger_entries", str(revoked_at)), ("ledger_entries", str(promoted_at))} <= named


def test_forged_state_snapshot_is_ignored(env: Env) -> None:
    """A snapshot edited to un-revoke a token fails its signature; the state is folded from the ledger."""
    follow = StateFollower(env.ws.engine, env.ws.signer)
    follow.refresh()
    follow.save_snapshot()
    with env.ws.engine.connect() as conn:
        doc = json.loads(conn.execute(select(meta.c.value).where(meta.c.key == SNAPSHOT_KEY)).scalar_one())
    revoked_id = _id(env.tokens["revoked"])
    for token in doc["state"]["tokens"]:
        if token["token_id"] == revoked_id:
            token["revoked_index"] = None
    _set(env, meta, meta.c.key == SNAPSHOT_KEY, value=json.dumps(doc))
    fresh = StateFollower(env.ws.engine, env.ws.signer).refresh()
    assert fresh.tokens[revoked_id].revoked_index is not None


def test_entry_text_rewritten_to_move_a_revocation_is_not_folded(env: Env) -> None:
    """Rewriting a revocation's text to name another token breaks the root: nothing unproven enters the state.

    Without the root check the fold would read the rewritten text and revive the revoked token.
    """
    revoked_id = _id(env.tokens["revoked"])
    with env.ws.engine.connect() as conn:
        index, text = conn.execute(
            select(ledger_entries.c.idx, ledger_entries.c.entry).where(ledger_entries.c.kind == "token.revoked")
        ).one()
    forged = text.replace(f"token:{revoked_id}", "token:ffffffffffffffff")
    assert forged != text
    _set(env, ledger_entries, ledger_entries.c.idx == index, entry=forged)
    with pytest.raises(IntegrityError, match="signed head"):
        StateFollower(env.ws.engine, env.ws.signer, use_snapshot=False).refresh()
    with pytest.raises(IntegrityError), TestClient(create_app(env.ws.options, Settings(database_url=None))):
        pass  # a gateway refuses to start on a ledger whose entries do not prove its head
