"""The gateway's behaviour: recorded predictions, feedback, proofs over HTTP, limits, fail-closed."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlwarden.config import Settings
from mlwarden.identity.tokens import create_token
from mlwarden.ledger import merkle
from mlwarden.ledger.entry import Entry
from mlwarden.ledger.notes import Checkpoint, NoteVerifier
from mlwarden.registry.governance import approve_and_promote
from mlwarden.registry.models import register_model
from mlwarden.samples import SampleModel
from mlwarden.subjects.decisions import prediction_payloads
from tests.unit.api.conftest import Env, make_env


def test_prediction_is_recorded_before_the_answer(env: Env) -> None:
    """The response carries decision ids and the ledger index; the entry holds principal, version, inputs, outputs."""
    rows = env.rows(3)
    response = env.client.post(
        "/v1/models/bc/predict", json={"inputs": rows}, headers=env.headers(env.tokens["inference:read"])
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model"], body["version"]) == ("bc", 1)
    assert len(body["decision_ids"]) == len(body["predictions"]) == 3
    entry = Entry.parse(env.ws.log.entry(body["ledger_index"]).text)
    assert entry.kind == "prediction"
    assert entry.principal.startswith("token:")
    assert "inputs" not in entry.body
    assert "outputs" not in entry.body
    assert prediction_payloads(env.ws, entry.to_json()) == {"inputs": rows, "outputs": body["predictions"]}
    assert entry.body["sha256"] == body["sha256"]
    assert entry.body["access"]["decision"] == "allow"


def test_named_rows_and_unknown_model(env: Env) -> None:
    """Rows may be objects keyed by feature name; an unknown model is a 404 problem."""
    names = [f"x{i}" for i in range(30)]
    named = [dict(zip(names, row, strict=True)) for row in env.rows(2)]
    headers = env.headers(env.tokens["inference:read"])
    assert env.client.post("/v1/models/bc/predict", json={"inputs": named}, headers=headers).status_code == 200
    missing = env.client.post("/v1/models/ghost/predict", json={"inputs": named}, headers=headers)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b'{"inputs": ', 400, "not valid JSON"),
        (b'{"inputs": []}', 422, "inputs"),
        (b'{"rows": [[1]]}', 422, "inputs"),
        (b'{"inputs": [[1, 2]]}', 422, "expected 30 values"),
        (b'{"inputs": [[NaN' + b", 1" * 29 + b"]]}", 422, "NaN"),
        (b'{"inputs": [["a"' + b", 1" * 29 + b"]]}", 422, "must be a number"),
        (b"[]", 422, "body"),
    ],
)
def test_bad_bodies_are_problems_not_crashes(env: Env, body: bytes, status: int, needle: str) -> None:
    """Malformed JSON, wrong shapes, NaN and wrong types: a 4xx problem naming what is wrong."""
    response = env.client.post(
        "/v1/models/bc/predict", content=body,
        headers={**env.headers(env.tokens["inference:read"]), "content-type": "application/json"},
    )  # fmt: skip
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert needle in response.json()["detail"]


def test_feedback_and_its_listing(env: Env) -> None:
    """Feedback on a real decision is recorded and listed per model; an unknown decision is 404."""
    decision = env.client.post(
        "/v1/models/bc/predict", json={"inputs": env.rows(1)}, headers=env.headers(env.tokens["inference:read"])
    ).json()["decision_ids"][0]
    headers = env.headers(env.tokens["feedback:write"])
    ok = env.client.post(
        "/v1/feedback", json={"decision_id": decision, "kind": "suspicious", "comment": "odd"}, headers=headers
    )
    assert ok.status_code == 200, ok.text
    unknown = env.client.post("/v1/feedback", json={"decision_id": "nope", "kind": "other"}, headers=headers)
    assert unknown.status_code == 404
    wrong_kind = env.client.post("/v1/feedback", json={"decision_id": decision, "kind": "angry"}, headers=headers)
    assert wrong_kind.status_code == 422
    listed = env.client.get("/v1/models/bc/feedback", headers=env.headers(env.tokens["audit:read"])).json()
    assert [f["body"]["decision_id"] for f in listed["feedback"]] == [decision]
    assert listed["feedback"][0]["body"]["kind"] == "suspicious"


def test_decision_proof_verifies_against_the_signed_checkpoint(env: Env) -> None:
    """GET /v1/decisions/{id} returns the entry and an inclusion proof that verifies offline."""
    decision = env.client.post(
        "/v1/models/bc/predict", json={"inputs": env.rows(1)}, headers=env.headers(env.tokens["inference:read"])
    ).json()["decision_ids"][0]
    body = env.client.get(f"/v1/decisions/{decision}", headers=env.headers(env.tokens["audit:read"])).json()
    verifier = NoteVerifier.parse((env.ws.options.paths.public_key).read_text())
    cp = Checkpoint.open(body["checkpoint"], verifier)
    proof = body["inclusion_proof"]
    leaf = merkle.leaf_hash(env.ws.log.entry(proof["index"]).text.encode())
    assert leaf.hex() == proof["leaf_hash"]
    merkle.verify_inclusion(leaf, proof["index"], cp.size, [bytes.fromhex(h) for h in proof["proof"]], cp.root)
    assert decision in body["entry"]["body"]["decision_ids"]
    cons = env.client.get("/v1/ledger/proofs/consistency?old=1&new=2", headers=env.headers(env.tokens["audit:read"]))
    assert cons.status_code == 200
    assert (
        env.client.get(
            "/v1/ledger/proofs/consistency?old=3&new=2", headers=env.headers(env.tokens["audit:read"])
        ).status_code
        == 400
    )


def test_new_production_version_is_served_without_restart(env: Env) -> None:
    """Promoting another version switches what the gateway serves, with no restart."""
    headers = env.headers(env.tokens["inference:read"])
    assert (
        env.client.post("/v1/models/bc/predict", json={"inputs": env.rows(1)}, headers=headers).json()["version"] == 1
    )
    register_model(env.ws, name="bc", path=env.sample.skops, card_path=env.sample.card, principal="alice")
    approve_and_promote(env.ws, "bc", 2, approver="reviewer")
    time.sleep(1.1)
    assert (
        env.client.post("/v1/models/bc/predict", json={"inputs": env.rows(1)}, headers=headers).json()["version"] == 2
    )


@pytest.fixture
def limited(tmp_path: Path, api_sample: SampleModel) -> Iterator[Env]:
    settings = Settings(database_url=None, rate_limit=1, rate_burst=3, max_body_bytes=4096, max_rows=5,
                        db_lock_timeout_seconds=0.3, gc_freeze=False)  # fmt: skip
    yield from make_env(tmp_path / "ws", api_sample, settings)


def test_rate_limit_returns_429_with_retry_after(limited: Env) -> None:
    """A burst beyond the bucket is refused with 429, Retry-After, and a ledger entry."""
    headers = limited.headers(limited.tokens["audit:read"])
    codes = [limited.client.get("/v1/ledger/checkpoint", headers=headers).status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200]
    assert 429 in codes[3:]
    refused = limited.client.get("/v1/ledger/checkpoint", headers=headers)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    kinds = [Entry.parse(t).body.get("status") for _i, t, _h in limited.ws.log.iter_rows() if b"request.rejected" in t]
    assert 429 in kinds


def test_body_and_row_limits(limited: Env) -> None:
    """Bodies over the byte limit are 413 before parsing; too many rows are 413 too."""
    headers = limited.headers(limited.tokens["inference:read"])
    big = limited.client.post(
        "/v1/models/bc/predict",
        content=b"{" + b" " * 5000 + b"}",
        headers={**headers, "content-type": "application/json"},
    )
    assert big.status_code == 413
    assert big.headers["content-type"] == "application/problem+json"
    many = limited.client.post("/v1/models/bc/predict", json={"inputs": [[0.1] * 30] * 6}, headers=headers)
    assert many.status_code in (413, 429)


def test_ledger_outage_fails_closed(limited: Env) -> None:
    """With the database locked past the timeout, predict answers 503, serves nothing unrecorded, and counts it."""
    headers = limited.headers(limited.tokens["inference:read"])
    before = limited.ws.log.size()
    blocker = sqlite3.connect(limited.ws.options.paths.database, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        response = limited.client.post("/v1/models/bc/predict", json={"inputs": limited.rows(1)}, headers=headers)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert response.status_code == 503, response.text
    assert "predictions" not in response.json()
    assert response.headers["content-type"] == "application/problem+json"
    metrics = limited.client.get("/metrics").text
    assert "mlwarden_ledger_outages_total 1.0" in metrics
    assert limited.ws.log.size() == before
    assert limited.ws.log.verify().ok


def test_health_and_metrics(env: Env) -> None:
    """Liveness, readiness and Prometheus metrics (requests, denials, latency, ledger size)."""
    assert env.client.get("/healthz").json() == {"status": "ok"}
    assert env.client.get("/readyz").json()["status"] == "ready"
    env.client.get("/v1/ledger/checkpoint")
    text = env.client.get("/metrics").text
    for name in (
        "mlwarden_requests_total",
        "mlwarden_denials_total",
        "mlwarden_request_seconds_bucket",
        "mlwarden_ledger_entries",
    ):
        assert name in text


def test_admin_token_lifecycle(env: Env) -> None:
    """Admins create (secret once), list (never secrets) and revoke tokens; the revoked token stops working."""
    admin = env.headers(env.tokens["admin"])
    made = env.client.post(
        "/v1/admin/tokens", json={"name": "svc", "scopes": ["audit:read"], "expires": "1d"}, headers=admin
    ).json()
    assert made["token"].startswith(f"mlw_{made['id']}_")
    listed = env.client.get("/v1/admin/tokens", headers=admin).text
    assert made["token"].rsplit("_", 1)[1] not in listed
    assert env.client.get("/v1/ledger/checkpoint", headers=env.headers(made["token"])).status_code == 200
    assert env.client.delete(f"/v1/admin/tokens/{made['id']}", headers=admin).json()["state"] == "revoked"
    assert env.client.get("/v1/ledger/checkpoint", headers=env.headers(made["token"])).status_code == 401
    bad = env.client.post("/v1/admin/tokens", json={"name": "x", "scopes": ["root"]}, headers=admin)
    assert bad.status_code == 400
    assert "unknown scope" in bad.json()["detail"]


def test_tokens_are_stored_hashed(env: Env) -> None:
    """The tokens table never holds a secret, only its SHA-256."""
    token, _ = create_token(env.ws, name="probe", scopes=["audit:read"], principal="admin")
    secret = token.rsplit("_", 1)[1]
    dump = "\n".join(sqlite3.connect(env.ws.options.paths.database).iterdump())
    assert secret not in dump


def test_rejections_before_a_route_runs_are_recorded(limited: Env) -> None:
    """Oversized bodies (counted before authentication) and bodies FastAPI refuses are recorded too."""
    headers = limited.headers(limited.tokens["inference:read"])
    before = limited.ws.log.size()
    summary = limited.client.app.state.rejections.summary  # type: ignore[attr-defined]
    limited.client.post(
        "/v1/models/bc/predict",
        content=b"{" + b" " * 5000 + b"}",
        headers={**headers, "content-type": "application/json"},
    )
    limited.client.post("/v1/models/bc/predict", json={"rows": []}, headers=headers)
    statuses = [Entry.parse(t).body.get("status") for i, t, _h in limited.ws.log.iter_rows(before)]
    assert summary.peek()["statuses"] == {"413": 1}  # nobody is known before the body is read: summed
    assert 422 in statuses  # after authentication: one entry naming the caller


def test_promotion_workflow_over_http(env: Env) -> None:
    """Approve and promote over the API (scope model:promote): gates decide; a refusal is 409 with the gate table."""
    register_model(env.ws, name="bc", path=env.sample.skops, card_path=env.sample.card, principal="alice")
    promoter = env.headers(env.tokens["model:promote"])
    refused = env.client.post("/v1/models/bc/versions/2/promote", json={"stage": "production"}, headers=promoter)
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert {g["gate"]: g["status"] for g in refused.json()["gates"]}["approvals"] == "fail"
    assert env.client.post("/v1/models/bc/versions/2/approve", json={}, headers=promoter).status_code == 200
    ok = env.client.post("/v1/models/bc/versions/2/promote", json={"stage": "production"}, headers=promoter)
    assert ok.status_code == 200, ok.text
    back = env.client.post("/v1/models/bc/rollback", headers=promoter)
    assert back.json()["version"] == 1
    assert (
        env.client.post("/v1/models/bc/rollback", headers=env.headers(env.tokens["inference:read"])).status_code == 403
    )


def test_registration_over_http(env: Env, tmp_path: Path) -> None:
    """POST /v1/models/{name}/versions (scope model:write) registers; a pickle is refused (422); others get 403."""
    import os
    import pickle

    writer, _ = create_token(env.ws, name="ci", scopes=["model:write"], principal="admin")
    headers = env.headers(writer)
    files = {"model": ("m.skops", env.sample.skops.read_bytes()), "card": ("card.md", env.sample.card.read_bytes())}
    made = env.client.post("/v1/models/uploaded/versions", files=files, headers=headers)
    assert made.status_code == 201, made.text
    assert (made.json()["name"], made.json()["version"], made.json()["format"]) == ("uploaded", 1, "skops")

    class Evil:
        def __reduce__(self) -> tuple[object, ...]:
            return (os.system, (f"touch {tmp_path / 'PWNED'}",))

    evil = {"model": ("model.onnx", pickle.dumps(Evil())), "card": ("card.md", b"# card\n")}
    refused = env.client.post("/v1/models/uploaded/versions", files=evil, headers=headers)
    assert refused.status_code == 422
    assert refused.json()["type"] == "urn:mlwarden:problem:unsafe-artifact"
    assert "posix.system" in refused.json()["detail"]
    assert not (tmp_path / "PWNED").exists()
    denied = env.client.post(
        "/v1/models/uploaded/versions", files=files, headers=env.headers(env.tokens["inference:read"])
    )
    assert denied.status_code == 403


@pytest.mark.postgres
def test_gateway_on_postgresql(request: pytest.FixtureRequest, tmp_path: Path, api_sample: SampleModel) -> None:
    """Two gateway instances on one PostgreSQL database record into one ledger that verifies."""
    from fastapi.testclient import TestClient

    from mlwarden.api.app import create_app
    from tests.conftest import _fresh_database

    url = _fresh_database(request.getfixturevalue("postgres_server"), request)
    settings = Settings(database_url=url, auth_cache_seconds=0, rate_limit=0, gc_freeze=False)
    env_iter = make_env(tmp_path / "ws", api_sample, settings)
    env = next(env_iter)
    try:
        second = create_app(env.ws.options, settings)
        headers = env.headers(env.tokens["inference:read"])
        with TestClient(second) as other:
            answers = []
            for client in (env.client, other, env.client, other):
                response = client.post("/v1/models/bc/predict", json={"inputs": env.rows(2)}, headers=headers)
                assert response.status_code == 200, response.text
                answers.append(response.json())
        indices = [a["ledger_index"] for a in answers]
        assert len(set(indices)) == 4
        for answer in answers:
            assert env.ws.log.find_ref(answer["decision_ids"][0]) == answer["ledger_index"]
        assert env.ws.log.verify().ok
    finally:
        next(env_iter, None)
