"""The plain-ASGI predict route: same answers, records, refusals and metrics as the declared FastAPI route."""

from __future__ import annotations

import json
import math
import re

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlwarden.ledger.entry import Entry
from mlwarden.subjects.decisions import prediction_payloads
from tests.unit.api.conftest import Env

PREDICT = "/v1/models/bc/predict"


def _count(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample in the Prometheus text format (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in metrics.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and ",".join(sorted(match.group(1).split(","))) == wanted:
            return float(match.group(2))
    return 0.0


def test_openapi_still_describes_the_predict_route(env: Env) -> None:
    """The route answered by plain ASGI keeps its summary and its request body in the OpenAPI document."""
    spec = env.client.get("/openapi.json").json()
    operation = spec["paths"]["/v1/models/{name}/predict"]["post"]
    assert operation["summary"] == "Predict with the production version (scope inference:read)"
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert schema["required"] == ["inputs"]
    assert schema["properties"]["inputs"]["minItems"] == 1


def test_ordinary_and_handed_over_requests_answer_alike(env: Env) -> None:
    """application/json (the fast route) and a +json type (handed to FastAPI) predict and record the same."""
    rows = env.rows(2)
    headers = env.headers(env.tokens["inference:read"])
    body = {"inputs": rows}
    fast = env.client.post(PREDICT, json=body, headers=headers)
    declared = env.client.post(PREDICT, json=body, headers={**headers, "content-type": "application/vnd.mlwarden+json"})
    for response in (fast, declared):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
    assert fast.json()["predictions"] == declared.json()["predictions"]
    assert fast.json()["ledger_index"] != declared.json()["ledger_index"]
    for response in (fast, declared):
        entry = Entry.parse(env.ws.log.entry(response.json()["ledger_index"]).text)
        assert (entry.kind, prediction_payloads(env.ws, entry.to_json())["inputs"]) == ("prediction", rows)
        assert entry.body["decision_ids"] == response.json()["decision_ids"]


def test_malformed_json_is_judged_before_authentication(env: Env) -> None:
    """As before: unparsable JSON is 400 whoever sends it; a parsable but wrong body is 401 without a token."""
    bad = env.headers(env.tokens["altered"])
    good = env.headers(env.tokens["inference:read"])
    json_type = {"content-type": "application/json"}
    malformed = env.client.post(PREDICT, content=b'{"inputs": [[1,', headers={**bad, **json_type})
    assert (malformed.status_code, malformed.json()["type"]) == (400, "urn:mlwarden:problem:malformed-json")
    unauthenticated = env.client.post(PREDICT, json={"rows": [[1.0]]}, headers=bad)
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["www-authenticate"] == 'Bearer realm="mlwarden"'
    missing = env.client.post(PREDICT, json={"rows": [[1.0]]}, headers=good)
    assert missing.status_code == 422
    assert "inputs" in missing.json()["detail"]
    refused = env.client.post(PREDICT, json={"inputs": env.rows(1)}, headers=bad)
    assert refused.status_code == 401


def test_metrics_count_the_fast_route(env: Env) -> None:
    """Predictions, requests by route and status, and policy denials are counted on the fast route."""
    headers = env.headers(env.tokens["inference:read"])
    for _ in range(2):
        assert env.client.post(PREDICT, json={"inputs": env.rows(3)}, headers=headers).status_code == 200
    denied = env.client.post(PREDICT, json={"inputs": env.rows(1)}, headers=env.headers(env.tokens["other-model"]))
    assert denied.status_code == 403
    anonymous = env.client.post(PREDICT, json={"inputs": env.rows(1)})
    assert anonymous.status_code == 401
    text = env.client.get("/metrics").text
    assert _count(text, "mlwarden_predictions_total", model="bc") == 6.0
    route = "/v1/models/{name}/predict"
    assert _count(text, "mlwarden_requests_total", route=route, status="200") == 2.0
    assert _count(text, "mlwarden_requests_total", route=route, status="403") == 1.0
    assert _count(text, "mlwarden_denials_total", reason="policy") == 1.0
    assert _count(text, "mlwarden_denials_total", reason="unauthenticated") == 1.0
    assert _count(text, "mlwarden_request_seconds_count", route=route) == 4.0


@settings(max_examples=500, deadline=None)
@given(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["{!r}", "{:.17g}", "{:.16e}", "{:.3e}", "{:.6f}"]),
    st.integers(-(10**18) + 1, 10**18 - 1),
)
def test_orjson_reads_numbers_as_the_standard_library_does(value: float, form: str, integer: int) -> None:
    """The fast route's parser gives FastAPI's numbers: correctly rounded floats, exact integers (< 19 digits)."""
    text = "[" + form.format(value) + f", {integer}]"
    if re.search(r"[0-9]{19}", text):  # handed to the declared route (see the test below)
        return
    expected = json.loads(text)
    if math.isinf(expected[0]):  # rounded up past the largest double: orjson refuses, the declared route judges
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(text)
        return
    parsed = orjson.loads(text)
    assert parsed == expected
    assert type(parsed[1]) is int


@pytest.mark.parametrize("digits", [19, 25, 400])
def test_long_integers_are_judged_like_the_declared_route(env: Env, digits: int) -> None:
    """An integer orjson would round to a float goes to the declared route: the same refusal either way."""
    body = b'{"inputs": [[0.5' + b", 1" * 28 + b", " + b"9" * digits + b"]]}"
    headers = env.headers(env.tokens["inference:read"])
    fast = env.client.post(PREDICT, content=body, headers={**headers, "content-type": "application/json"})
    declared = env.client.post(PREDICT, content=body, headers={**headers, "content-type": "application/x+json"})
    assert fast.status_code == declared.status_code
    assert 400 <= fast.status_code < 500, fast.text
    assert fast.json()["detail"] == declared.json()["detail"]


def test_ordinary_requests_are_answered_before_the_router(env: Env) -> None:
    """With the declared route taken out of the router, ordinary requests and their refusals still answer.

    This shows the innermost middleware answers them (the router is not on their path) and that its
    errors are the app's own problem+json; an unusual body still goes to the router, which now has no
    such route.
    """
    app = env.client.app
    router = app.router  # type: ignore[attr-defined]
    router.routes[:] = [r for r in router.routes if getattr(r, "path", "") != "/v1/models/{name}/predict"]
    headers = env.headers(env.tokens["inference:read"])
    ok = env.client.post(PREDICT, json={"inputs": env.rows(1)}, headers=headers)
    assert ok.status_code == 200, ok.text
    unknown = env.client.post("/v1/models/nope/predict", json={"inputs": env.rows(1)}, headers=headers)
    assert unknown.status_code in (403, 404), unknown.text
    assert unknown.headers["content-type"] == "application/problem+json"
    anonymous = env.client.post(PREDICT, json={"inputs": env.rows(1)})
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    unusual = env.client.post(
        PREDICT, content=b'{"inputs": [NaN]}', headers={**headers, "content-type": "application/json"}
    )
    assert unusual.status_code in (404, 405)
