"""Bad input over HTTP is a recorded 4xx problem (or a 503 for an outage), never a 500."""

from __future__ import annotations

import sqlite3

import pytest

from mlwarden.identity.tokens import create_token
from mlwarden.ledger.entry import Entry
from tests.unit.api.conftest import Env


def _kinds_since(env: Env, before: int) -> list[Entry]:
    return [Entry.parse(t) for _i, t, _h in env.ws.log.iter_rows(before)]


def _assert_problem(response: object, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    return response.json()  # type: ignore[attr-defined,no-any-return]


@pytest.mark.parametrize("number", [b"1e400", b"-1e400", b"1" + b"0" * 400])
def test_numbers_too_large_for_a_float_are_422(env: Env, number: bytes) -> None:
    """A predict value beyond float range (1e400, a 400-digit int) is a recorded 422 naming the row and field."""
    before = env.ws.log.size()
    body = b'{"inputs": [[0.5' + b", 1" * 28 + b", " + number + b"]]}"
    response = env.client.post(
        "/v1/models/bc/predict", content=body,
        headers={**env.headers(env.tokens["inference:read"]), "content-type": "application/json"},
    )  # fmt: skip
    problem = _assert_problem(response, 422)
    assert "row 0" in str(problem["detail"])
    assert "x29" in str(problem["detail"])
    assert any(e.kind == "request.rejected" for e in _kinds_since(env, before))


def test_infinite_feedback_value_is_422(env: Env) -> None:
    """A feedback ``expected`` of 1e400 (inf after parsing) is refused with 422, not a 500 at the ledger."""
    ok = env.client.post(
        "/v1/models/bc/predict", json={"inputs": env.rows(1)}, headers=env.headers(env.tokens["inference:read"])
    ).json()
    body = b'{"decision_id": "' + ok["decision_ids"][0].encode() + b'", "kind": "incorrect", "expected": 1e400}'
    response = env.client.post(
        "/v1/feedback", content=body,
        headers={**env.headers(env.tokens["feedback:write"]), "content-type": "application/json"},
    )  # fmt: skip
    assert "expected" in str(_assert_problem(response, 422)["detail"])


def test_deeply_nested_json_is_a_4xx(env: Env) -> None:
    """A body nested deeper than the parser's recursion limit is a 4xx, not a 500."""
    body = b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = env.client.post(
        "/v1/models/bc/predict", content=body,
        headers={**env.headers(env.tokens["inference:read"]), "content-type": "application/json"},
    )  # fmt: skip
    assert 400 <= response.status_code < 500, response.text


def test_upload_filename_dotdot_is_refused(env: Env) -> None:
    """A model uploaded as ``..`` (or with a path) is a recorded 4xx, never a write outside the upload folder."""
    writer, _ = create_token(env.ws, name="ci", scopes=["model:write"], principal="admin")
    before = env.ws.log.size()
    for name in ("..", ".", "", "a/../.."):
        files = {"model": (name, env.sample.skops.read_bytes()), "card": ("card.md", env.sample.card.read_bytes())}
        response = env.client.post("/v1/models/up/versions", files=files, headers=env.headers(writer))
        assert response.status_code in (400, 422), (name, response.text)
    assert sum(e.kind == "request.rejected" for e in _kinds_since(env, before)) >= 3


def test_model_card_not_utf8_is_422(env: Env) -> None:
    """A model card that is not UTF-8 text is a recorded 422 naming the card."""
    writer, _ = create_token(env.ws, name="ci", scopes=["model:write"], principal="admin")
    before = env.ws.log.size()
    files = {"model": ("m.skops", env.sample.skops.read_bytes()), "card": ("card.md", b"\xff\xfe\x00binary\x80")}
    problem = _assert_problem(env.client.post("/v1/models/up/versions", files=files, headers=env.headers(writer)), 422)
    assert "card" in str(problem["detail"])
    assert any(e.kind == "request.rejected" for e in _kinds_since(env, before))


@pytest.mark.parametrize("expires", ["999999w", "99999999999d", "0d", "soon"])
def test_token_expiry_out_of_range_is_422(env: Env, expires: str) -> None:
    """An expiry past the calendar's range (999999w) or malformed is 422 on ``expires``; no token is made."""
    before = env.ws.log.size()
    response = env.client.post(
        "/v1/admin/tokens", json={"name": "x", "scopes": ["audit:read"], "expires": expires},
        headers=env.headers(env.tokens["admin"]),
    )  # fmt: skip
    problem = _assert_problem(response, 422)
    assert problem["field"] == "expires"
    kinds = [e.kind for e in _kinds_since(env, before)]
    assert "token.created" not in kinds
    assert "request.rejected" in kinds


def test_raw_database_error_is_503_without_sql(env: Env) -> None:
    """A database error outside the ledger (a table gone) is 503 problem+json with no SQL text, never a 500."""
    with sqlite3.connect(env.ws.options.paths.database) as db:
        db.execute("ALTER TABLE tokens RENAME TO tokens_gone")
    try:
        response = env.client.get("/v1/ledger/checkpoint", headers=env.headers(env.tokens["audit:read"]))
    finally:
        with sqlite3.connect(env.ws.options.paths.database) as db:
            db.execute("ALTER TABLE tokens_gone RENAME TO tokens")
    problem = _assert_problem(response, 503)
    assert problem["type"] == "urn:mlwarden:problem:database-unavailable"
    for word in ("SELECT", "TOKENS", "SQLITE"):
        assert word not in str(problem["detail"]).upper()


def test_long_path_parameter_denial_is_recorded(env: Env) -> None:
    """A denial on a 100 KB model name is still a ledger entry, with the subject cut to the ledger's limit."""
    before = env.ws.log.size()
    name = "m" * 60_000  # the test client's URL limit is 64 KiB; a real server's header limit may be lower
    response = env.client.post(
        f"/v1/models/{name}/predict", json={"inputs": env.rows(1)}, headers=env.headers(env.tokens["other-model"])
    )
    assert response.status_code == 403, response.text[:300]
    entries = _kinds_since(env, before)
    assert any(e.kind == "access.denied" for e in entries)
    assert all(len(e.subject) <= 1024 for e in entries)
