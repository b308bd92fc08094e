"""The authorisation matrix: every endpoint × every scope × every token state; denials are recorded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mlwarden.identity.scopes import Scope
from mlwarden.ledger.entry import Entry
from tests.unit.api.conftest import Env

Endpoint = tuple[str, str, Scope, Callable[[Env], dict[str, Any]]]


def _decision_id(env: Env) -> str:
    response = env.client.post(
        "/v1/models/bc/predict", json={"inputs": env.rows(1)}, headers=env.headers(env.tokens["inference:read"])
    )
    assert response.status_code == 200, response.text
    return str(response.json()["decision_ids"][0])


def _endpoints(env: Env) -> list[tuple[str, str, Scope, dict[str, Any]]]:
    decision = _decision_id(env)
    victim = env.client.post(
        "/v1/admin/tokens", json={"name": "victim", "scopes": ["data:read"]}, headers=env.headers(env.tokens["admin"])
    ).json()["id"]
    return [
        ("POST", "/v1/models/bc/predict", Scope.INFERENCE_READ, {"json": {"inputs": env.rows(1)}}),
        ("POST", "/v1/feedback", Scope.FEEDBACK_WRITE, {"json": {"decision_id": decision, "kind": "incorrect"}}),
        ("GET", "/v1/models/bc/feedback", Scope.AUDIT_READ, {}),
        ("GET", f"/v1/decisions/{decision}", Scope.AUDIT_READ, {}),
        ("GET", "/v1/ledger/checkpoint", Scope.AUDIT_READ, {}),
        ("GET", "/v1/ledger/proofs/inclusion/0", Scope.AUDIT_READ, {}),
        ("GET", "/v1/ledger/proofs/consistency?old=1&new=2", Scope.AUDIT_READ, {}),
        ("POST", "/v1/admin/tokens", Scope.ADMIN, {"json": {"name": "made", "scopes": ["data:read"]}}),
        ("GET", "/v1/admin/tokens", Scope.ADMIN, {}),
        ("DELETE", f"/v1/admin/tokens/{victim}", Scope.ADMIN, {}),
    ]


def _denials(env: Env) -> int:
    kinds = [Entry.parse(t).kind for _i, t, _h in env.ws.log.iter_rows()]
    return sum(k in ("access.denied", "request.rejected") for k in kinds)


def test_scope_matrix(env: Env) -> None:
    """Only the scope an endpoint names opens it; every other scope gets 403 and a ledger entry."""
    for method, path, needed, kwargs in _endpoints(env):
        for scope in Scope:
            before = _denials(env)
            response = env.client.request(method, path, headers=env.headers(env.tokens[scope.value]), **kwargs)
            if scope == needed:
                assert response.status_code < 300, (method, path, scope, response.text)
                assert _denials(env) == before
            else:
                assert response.status_code == 403, (method, path, scope, response.status_code)
                assert response.headers["content-type"] == "application/problem+json"
                assert needed.value in response.json()["detail"]
                assert _denials(env) == before + 1, (method, path, scope)


@pytest.mark.parametrize("state", ["missing", "malformed", "altered", "expired", "revoked"])
def test_bad_tokens_get_401_everywhere(env: Env, state: str) -> None:
    """No endpoint answers a missing, malformed, altered, expired or revoked token; each refusal is counted.

    Unauthenticated refusals are summed into the window's ``request.rejected_summary`` entry
    (see test_unauthenticated_flood), so each adds one to the pending count, not a write.
    """
    summary = env.client.app.state.rejections.summary  # type: ignore[attr-defined]
    for method, path, _needed, kwargs in _endpoints(env):
        before, pending = _denials(env), summary.pending
        token = None if state == "missing" else env.tokens[state]
        response = env.client.request(method, path, headers=env.headers(token), **kwargs)
        assert response.status_code == 401, (state, method, path, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
        body = response.json()
        assert body["status"] == 401
        if state in ("expired", "revoked"):
            assert state in body["detail"]
        assert (_denials(env), summary.pending) == (before, pending + 1)


def test_model_limited_token_may_call_no_other_model(env: Env) -> None:
    """A token limited to model 'other' can predict with it and is refused (403, recorded) for 'bc'."""
    token = env.tokens["other-model"]
    ok = env.client.post("/v1/models/other/predict", json={"inputs": env.rows(1)}, headers=env.headers(token))
    assert ok.status_code == 200, ok.text
    before = _denials(env)
    refused = env.client.post("/v1/models/bc/predict", json={"inputs": env.rows(1)}, headers=env.headers(token))
    assert refused.status_code == 403
    assert "limited to models: other" in refused.json()["detail"]
    assert _denials(env) == before + 1
    assert env.client.get("/v1/models/bc/feedback", headers=env.headers(token)).status_code == 403


def test_denial_entries_never_contain_a_secret(env: Env) -> None:
    """Ledger entries about refused tokens name the token id at most, never the secret."""
    env.client.get("/v1/ledger/checkpoint", headers=env.headers(env.tokens["altered"]))
    env.client.get("/v1/ledger/checkpoint", headers=env.headers(env.tokens["inference:read"]))
    texts = "\n".join(t.decode() for _i, t, _h in env.ws.log.iter_rows())
    for token in env.tokens.values():
        secret = token.rsplit("_", 1)[-1]
        if len(secret) >= 20:
            assert secret not in texts
