"""``GET /v1/audit/entries``: scope audit:read, keyset pages, model-restricted callers, 400s naming the parameter."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlwarden.config import Settings
from mlwarden.samples import SampleModel
from tests.unit.api.conftest import Env, make_env
from tests.unit.api.conftest import api_sample as api_sample  # the session's sample model, shared

URL = "/v1/audit/entries"


@pytest.fixture
def env(tmp_path: Path, api_sample: SampleModel) -> Iterator[Env]:
    settings = Settings(database_url=None, auth_cache_seconds=0, rate_limit=0, gc_freeze=False)
    yield from make_env(tmp_path / "ws", api_sample, settings)


def _get(env: Env, token: str | None, **params: Any) -> Any:
    return env.client.get(URL, params=params, headers=env.headers(token))


def _predict(env: Env, n: int = 2) -> dict[str, Any]:
    response = env.client.post("/v1/models/bc/predict", json={"inputs": env.rows(n)},
                               headers=env.headers(env.tokens["inference:read"]))  # fmt: skip
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_entries_ascend_and_pages_follow_next_since_index(env: Env) -> None:
    """Pages of 4, chained by next_since_index, give every entry once in index order; the last says null."""
    _predict(env)
    token = env.tokens["audit:read"]
    size = env.ws.log.size()
    seen: list[int] = []
    params: dict[str, Any] = {"limit": 4}
    while True:
        response = _get(env, token, **params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"entries", "next_since_index"}
        seen += [e["index"] for e in body["entries"]]
        if body["next_since_index"] is None:
            break
        params = {"limit": 4, "since_index": body["next_since_index"]}
    assert seen[:size] == list(range(size))  # each read is recorded too: the log grows while we page


def test_filters_and_the_decision_lookup(env: Env) -> None:
    """kind/principal/model/decision filter the record; the body carries commitments, never the inputs."""
    answer = _predict(env, 3)
    token = env.tokens["audit:read"]
    found = _get(env, token, decision=answer["decision_ids"][1]).json()["entries"]
    assert [(e["kind"], e["index"]) for e in found] == [("prediction", answer["ledger_index"])]
    text = json.dumps(found)
    for value in env.rows(3)[0][:5]:
        assert json.dumps(value) not in text
    by_kind = _get(env, token, kind="prediction", model="bc").json()["entries"]
    assert {(e["kind"], e["subject"]) for e in by_kind} == {("prediction", "model:bc:1")}
    principal = found[0]["principal"]
    assert {e["principal"] for e in _get(env, token, principal=principal).json()["entries"]} == {principal}


def test_reads_are_recorded(env: Env) -> None:
    """Every allowed audit read is itself an access.allowed entry."""
    token = env.tokens["audit:read"]
    before = env.ws.log.size()
    assert _get(env, token, kind="model.registered").status_code == 200
    last = _get(env, token, since_index=before).json()["entries"][0]
    assert (last["kind"], last["subject"], last["body"]["action"]) == ("access.allowed", "ledger", "audit:read")


@pytest.mark.parametrize(("token", "status"), [(None, 401), ("inference:read", 403), ("revoked", 401)])
def test_scope_audit_read_is_required(env: Env, token: str | None, status: int) -> None:
    """No token, a token without audit:read, a revoked token: refused as problem+json."""
    response = _get(env, None if token is None else env.tokens[token])
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"


def test_a_model_restricted_caller_sees_only_its_models(env: Env) -> None:
    """A token limited to model "other" must name it, may not name bc, and sees only other's entries."""
    token = env.tokens["other-model"]
    assert _get(env, token).status_code == 403
    assert _get(env, token, model="bc").status_code == 403
    response = _get(env, token, model="other")
    assert response.status_code == 200
    subjects = {e["subject"] for e in response.json()["entries"]}
    assert subjects
    assert all(s == "model:other" or s.startswith("model:other:") for s in subjects)


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-40"}, "until"),
        ({"limit": "0"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"since_index": "-1"}, "since_index"),
        ({"since_index": "9" * 30}, "since_index"),
        ({"status": "abc"}, "status"),
        ({"kind": "NOT A KIND"}, "kind"),
        ({"decision": "x" * 65}, "decision"),
        ({"principal": "p" * 513}, "principal"),
    ],
)
def test_bad_parameters_are_400_problems_naming_them(env: Env, params: dict[str, str], needle: str) -> None:
    """Each bad parameter: 400 problem+json whose detail names the parameter; never a 422 or 500."""
    response = _get(env, env.tokens["audit:read"], **params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"].startswith(f"parameter {needle}")
