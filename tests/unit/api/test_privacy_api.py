"""Personal data over HTTP: subjects in predict requests, erasure (scope privacy:erase), decisions after it."""

from __future__ import annotations

from mlwarden.ledger.entry import Entry
from tests.unit.api.conftest import Env

PREDICT = "/v1/models/bc/predict"


def _predict(env: Env, subjects: list[str], content_type: str = "application/json") -> dict[str, object]:
    headers = {**env.headers(env.tokens["inference:read"]), "content-type": content_type}
    body = {"inputs": env.rows(len(subjects)), "subjects": subjects}
    response = env.client.post(PREDICT, json=body, headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


def test_erase_needs_its_own_scope_and_is_recorded(env: Env) -> None:
    """audit:read and admin cannot erase; privacy:erase can; the entry names no subject; decisions read as erased."""
    result = _predict(env, ["customer-42", "customer-7"])
    ids = result["decision_ids"]
    assert isinstance(ids, list)
    body = {"subject": "customer-42", "reason": "gdpr art. 17"}
    for token in ("audit:read", "admin", "inference:read"):
        denied = env.client.post("/v1/privacy/erase", json=body, headers=env.headers(env.tokens[token]))
        assert denied.status_code == 403, denied.text
    erased = env.client.post("/v1/privacy/erase", json=body, headers=env.headers(env.tokens["privacy:erase"]))
    assert erased.status_code == 200, erased.text
    answer = erased.json()
    assert answer["keys_destroyed"] == 2
    assert "customer-42" not in env.ws.log.entry(answer["ledger_index"]).text
    assert Entry.parse(env.ws.log.entry(answer["ledger_index"]).text).principal.startswith("token:")
    audit = env.headers(env.tokens["audit:read"])
    gone = env.client.get(f"/v1/decisions/{ids[0]}", headers=audit).json()
    assert gone["inputs"] == {"erased": True, "erasure_index": answer["ledger_index"]}
    assert gone["outputs"] == {"erased": True, "erasure_index": answer["ledger_index"]}
    assert gone["entry"]["body"]["v"] == 2
    kept = env.client.get(f"/v1/decisions/{ids[1]}", headers=audit).json()
    assert kept["inputs"] == env.rows(2)[1]


def test_subjects_are_checked_on_both_routes(env: Env) -> None:
    """A wrong subject count or type is a 4xx problem on the fast route and the declared one, nothing recorded."""
    headers = env.headers(env.tokens["inference:read"])
    size = env.ws.log.size()
    for content_type in ("application/json", "application/vnd.mlwarden+json"):
        for subjects in (["only-one"], [1, 2], "a"):
            response = env.client.post(
                PREDICT,
                json={"inputs": env.rows(2), "subjects": subjects},
                headers={**headers, "content-type": content_type},
            )
            assert 400 <= response.status_code < 500, response.text
            assert response.headers["content-type"] == "application/problem+json"
    prediction_kinds = [Entry.parse(env.ws.log.entry(i).text).kind for i in range(size, env.ws.log.size())]
    assert "prediction" not in prediction_kinds


def test_erase_body_is_validated(env: Env) -> None:
    """An empty subject or reason is a 422 problem, not an erasure."""
    headers = env.headers(env.tokens["privacy:erase"])
    for body in ({"subject": "", "reason": "x"}, {"subject": "a", "reason": ""}, {"subject": "a"}):
        response = env.client.post("/v1/privacy/erase", json=body, headers=headers)
        assert response.status_code == 422, response.text


def test_free_text_refuse_policy(env: Env) -> None:
    """With privacy.free_text: refuse, a row whose text holds an e-mail is a 4xx naming the kind; no prediction."""
    with env.ws.options.paths.policy.open("a", encoding="utf-8") as policy:
        policy.write("\nprivacy: {free_text: refuse}\n")
    row = ["write to jo@corp.example", *env.rows(1)[0][1:]]
    size = env.ws.log.size()
    response = env.client.post(PREDICT, json={"inputs": [row]}, headers=env.headers(env.tokens["inference:read"]))
    assert 400 <= response.status_code < 500, response.text
    assert "free text holds identifiers (email)" in response.json()["detail"]
    assert "jo@corp.example" not in response.text
    kinds = [Entry.parse(env.ws.log.entry(i).text).kind for i in range(size, env.ws.log.size())]
    assert "prediction" not in kinds


def test_feedback_comment_identifiers_masked_or_refused(env: Env) -> None:
    """A feedback comment is kept in the ledger: an e-mail in it is masked; with free_text: refuse, it is a 4xx."""
    decision = _predict(env, ["customer-1"])["decision_ids"]
    assert isinstance(decision, list)
    headers = env.headers(env.tokens["feedback:write"])
    comment = "customer jo@corp.example says the score is wrong"
    body = {"decision_id": decision[0], "kind": "incorrect", "comment": comment}
    ok = env.client.post("/v1/feedback", json=body, headers=headers)
    assert ok.status_code == 200, ok.text
    recorded = Entry.parse(env.ws.log.entry(ok.json()["ledger_index"]).text)
    assert recorded.body["comment"] == "customer [EMAIL] says the score is wrong"
    with env.ws.options.paths.policy.open("a", encoding="utf-8") as policy:
        policy.write("\nprivacy: {free_text: refuse}\n")
    gateway = env.client.app.state.gateway  # type: ignore[attr-defined]
    gateway._privacy = None  # read the policy now rather than within the second
    refused = env.client.post("/v1/feedback", json=body, headers=headers)
    assert 400 <= refused.status_code < 500, refused.text
    assert "free text holds identifiers (email)" in refused.json()["detail"]
