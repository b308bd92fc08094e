"""Scopes mean what the docs say: admins grant only their grant, model limits hold on every route."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from mlwarden.identity.tokens import create_token, list_tokens
from mlwarden.ledger.entry import Entry
from mlwarden.store.schema import tokens
from tests.unit.api.conftest import Env


def _token(env: Env, scopes: list[str], *, models: list[str] | None = None, grant: list[str] | None = None) -> str:
    token, _ = create_token(env.ws, name="t", scopes=scopes, principal="local:test", models=models, grant=grant)
    return token


def _token_id(token: str) -> str:
    return token.split("_")[1]


def _mint(env: Env, creator: str, **body: Any) -> Any:
    return env.client.post("/v1/admin/tokens", json={"name": "minted", **body}, headers=env.headers(creator))


def _last(env: Env) -> Entry:
    return env.ws.log.entry(env.ws.log.size() - 1).parse()


def _refused(env: Env, response: Any, *needles: str) -> Entry:
    """A 403 problem+json naming ``needles``, recorded as the newest ledger entry (an access.denied)."""
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    for needle in needles:
        assert needle in response.json()["detail"]
    denial = _last(env)
    assert denial.kind == "access.denied"
    assert denial.body["decision"] == "deny"
    return denial


def _predict(env: Env, model: str, token: str) -> dict[str, Any]:
    response = env.client.post(f"/v1/models/{model}/predict", json={"inputs": env.rows(1)}, headers=env.headers(token))
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_admin_cannot_mint_a_scope_it_was_not_granted(env: Env) -> None:
    """An admin granted inference:read mints inference:read tokens, and gets 403 (recorded) for audit:read."""
    admin = _token(env, ["admin"], grant=["inference:read"])
    assert _mint(env, admin, scopes=["inference:read"]).status_code == 201
    count = len(list_tokens(env.ws))
    denial = _refused(env, _mint(env, admin, scopes=["inference:read", "audit:read"]), "audit:read", "not grantable")
    assert "audit:read" in denial.body["reason"]
    assert len(list_tokens(env.ws)) == count


def test_admin_without_a_grant_cannot_mint_privileged_scopes(env: Env) -> None:
    """The default grant opens use and read scopes only: never admin, model:promote, model:write or data:write."""
    admin = env.tokens["admin"]
    assert _mint(env, admin, scopes=["inference:read", "feedback:write", "data:read", "audit:read"]).status_code == 201
    for scope in ("admin", "model:promote", "model:write", "data:write"):
        _refused(env, _mint(env, admin, scopes=[scope]), scope)


def test_admin_cannot_mint_admin_with_a_wider_grant(env: Env) -> None:
    """An admin may hand out admin only with a grant within its own; the child cannot widen it either."""
    admin = _token(env, ["admin"], grant=["admin", "inference:read"])
    child = _mint(env, admin, scopes=["admin"], grant=["inference:read"])
    assert child.status_code == 201, child.text
    assert child.json()["grant"] == ["inference:read"]
    _refused(env, _mint(env, admin, scopes=["admin"], grant=["inference:read", "audit:read"]), "grant scope audit:read")
    _refused(env, _mint(env, admin, scopes=["admin"]), "not grantable")  # the default grant is wider than its own
    _refused(env, _mint(env, child.json()["token"], scopes=["admin"], grant=["inference:read"]), "scope admin")
    assert _mint(env, child.json()["token"], scopes=["inference:read"]).status_code == 201


def test_model_limited_admin_mints_only_tokens_for_its_models(env: Env) -> None:
    """An admin limited to 'other' cannot mint an unrestricted token, nor one for 'bc'."""
    admin = _token(env, ["admin"], models=["other"])
    made = _mint(env, admin, scopes=["inference:read"], models=["other"])
    assert made.status_code == 201, made.text
    _refused(env, _mint(env, admin, scopes=["inference:read"]), "every model")
    _refused(env, _mint(env, admin, scopes=["inference:read"], models=["other", "bc"]), "model bc")


def test_minted_tokens_record_their_grant(env: Env) -> None:
    """token.created carries the grant, and a grant without admin is an input error."""
    admin = _token(env, ["admin"], grant=["admin", "audit:read"])
    made = _mint(env, admin, scopes=["admin"], grant=["audit:read"]).json()
    created = _last(env)
    assert (created.kind, created.subject) == ("token.created", f"token:{made['id']}")
    assert created.body["grant"] == ["audit:read"]
    assert created.principal == f"token:{_token_id(admin)}"
    refused = _mint(env, admin, scopes=["audit:read"], grant=["audit:read"])
    assert refused.status_code == 400
    assert "needs the admin scope" in refused.json()["detail"]


def test_empty_model_list_is_refused_not_every_model(env: Env) -> None:
    """An empty model list in the API body is a 422 (recorded), never an unrestricted token."""
    count = len(list_tokens(env.ws))
    response = _mint(env, env.tokens["admin"], scopes=["inference:read"], models=[])
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "models"
    assert len(list_tokens(env.ws)) == count
    assert _last(env).kind == "request.rejected"


def test_grant_changed_in_the_database_is_refused(env: Env) -> None:
    """The grant column is enforced state: a row whose grant differs from its ledger entry authenticates no one."""
    admin = _token(env, ["admin"], grant=["audit:read"])
    assert _mint(env, admin, scopes=["audit:read"]).status_code == 201
    with env.ws.engine.begin() as conn:
        conn.execute(update(tokens).where(tokens.c.id == _token_id(admin)).values(grant='["admin","model:promote"]'))
    refused = _mint(env, admin, scopes=["model:promote"])
    assert refused.status_code == 401
    assert "grant" in refused.json()["detail"]


def test_model_limited_token_reads_only_its_models_decisions(env: Env) -> None:
    """A token limited to 'other' reads decisions of 'other' (200) and is refused another model's (403, recorded)."""
    limited = env.tokens["other-model"]
    theirs = _predict(env, "bc", env.tokens["inference:read"])["decision_ids"][0]
    ours = _predict(env, "other", limited)["decision_ids"][0]
    own = env.client.get(f"/v1/decisions/{ours}", headers=env.headers(limited))
    assert own.status_code == 200, own.text
    assert own.json()["entry"]["subject"] == "model:other:1"
    refused = env.client.get(f"/v1/decisions/{theirs}", headers=env.headers(limited))
    denial = _refused(env, refused, "limited to models: other")
    assert denial.subject == f"decision:{theirs}"
    assert "entry" not in refused.json()


def test_model_limited_token_cannot_flag_another_models_decision(env: Env) -> None:
    """Feedback on another model's decision is 403 and recorded; on its own model's it is accepted."""
    limited = _token(env, ["feedback:write", "inference:read"], models=["other"])
    theirs = _predict(env, "bc", env.tokens["inference:read"])["decision_ids"][0]
    ours = _predict(env, "other", limited)["decision_ids"][0]
    size = env.ws.log.size()
    flag = {"kind": "incorrect", "comment": "wrong"}
    refused = env.client.post("/v1/feedback", json={"decision_id": theirs, **flag}, headers=env.headers(limited))
    _refused(env, refused, "limited to models: other")
    assert env.ws.log.size() == size + 1
    assert not env.ws.log.find("feedback", "model:bc:")
    accepted = env.client.post("/v1/feedback", json={"decision_id": ours, **flag}, headers=env.headers(limited))
    assert accepted.status_code == 200, accepted.text


def test_model_limited_token_reads_only_its_models_feedback(env: Env) -> None:
    """GET /v1/models/{name}/feedback answers for the token's own model and refuses others."""
    limited = env.tokens["other-model"]
    assert env.client.get("/v1/models/other/feedback", headers=env.headers(limited)).status_code == 200
    _refused(env, env.client.get("/v1/models/bc/feedback", headers=env.headers(limited)), "limited to models")


def test_model_limited_token_gets_no_inclusion_proof_of_another_models_entry(env: Env) -> None:
    """Proofs of another model's prediction are 403 (recorded); its own, checkpoints and consistency stay open."""
    limited = env.tokens["other-model"]
    theirs = _predict(env, "bc", env.tokens["inference:read"])["ledger_index"]
    ours = _predict(env, "other", limited)["ledger_index"]
    headers = env.headers(limited)
    denial = _refused(env, env.client.get(f"/v1/ledger/proofs/inclusion/{theirs}", headers=headers), "limited")
    assert denial.subject == f"ledger:{theirs}"
    own = env.client.get(f"/v1/ledger/proofs/inclusion/{ours}", headers=headers)
    assert own.status_code == 200, own.text
    assert own.json()["index"] == ours
    assert env.client.get("/v1/ledger/checkpoint", headers=headers).status_code == 200
    assert env.client.get(f"/v1/ledger/proofs/consistency?old=1&new={ours}", headers=headers).status_code == 200
    auditor = env.headers(env.tokens["audit:read"])
    assert env.client.get(f"/v1/ledger/proofs/inclusion/{theirs}", headers=auditor).status_code == 200


def test_inclusion_proof_of_an_index_past_the_log_is_404(env: Env) -> None:
    """Resolving an entry's model never crashes on an index beyond the log (or SQL's integer range)."""
    for token in (env.tokens["other-model"], env.tokens["audit:read"]):
        for index in (env.ws.log.size(), 2**63, 2**70):
            response = env.client.get(f"/v1/ledger/proofs/inclusion/{index}", headers=env.headers(token))
            assert response.status_code == 404, (index, response.text)
