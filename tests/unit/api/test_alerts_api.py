"""``GET /v1/alerts`` and ``POST /v1/alerts/{id}/ack``: scopes, shapes, bad input, model restriction."""

from __future__ import annotations

from mlwarden.monitor.service import workspace_watcher
from tests.unit.api.conftest import Env


def raise_alerts(env: Env) -> str:
    env.ws.log.append(kind="token.created", subject="token:x", principal="alice", body={"scopes": ["admin"]})
    env.ws.log.append(kind="model.stage_tampered", subject="model:other:1", principal="system:gateway", body={})
    watcher = workspace_watcher(env.ws)
    while watcher.tick():
        pass
    body = env.client.get("/v1/alerts", headers=env.headers(env.tokens["audit:read"])).json()
    return str(next(a["alert_id"] for a in body["alerts"] if a["subject"] == "token:x"))


def test_list_and_ack_over_http(env: Env) -> None:
    target = raise_alerts(env)
    listed = env.client.get("/v1/alerts", headers=env.headers(env.tokens["audit:read"]))
    assert listed.status_code == 200
    first = next(a for a in listed.json()["alerts"] if a["alert_id"] == target)
    assert (first["rule"], first["acknowledged"], first["ack"]) == ("governance.event", False, None)
    acked = env.client.post(f"/v1/alerts/{target}/ack", json={"reason": "expected: onboarding"},
                            headers=env.headers(env.tokens["alert:ack"]))  # fmt: skip
    assert acked.status_code == 200
    assert acked.json()["ack"]["by"].startswith("token:")
    still_open = env.client.get("/v1/alerts?open=true", headers=env.headers(env.tokens["audit:read"])).json()
    assert target not in [a["alert_id"] for a in still_open["alerts"]]
    again = env.client.post(f"/v1/alerts/{target}/ack", json={"reason": "x"},
                            headers=env.headers(env.tokens["alert:ack"]))  # fmt: skip
    assert again.status_code == 400


def test_audit_read_cannot_acknowledge(env: Env) -> None:
    target = raise_alerts(env)
    denied = env.client.post(f"/v1/alerts/{target}/ack", json={"reason": "hush"},
                             headers=env.headers(env.tokens["audit:read"]))  # fmt: skip
    assert denied.status_code == 403
    assert denied.headers["content-type"].startswith("application/problem+json")


def test_bad_input_is_a_4xx_problem(env: Env) -> None:
    target = raise_alerts(env)
    auth = env.headers(env.tokens["alert:ack"])
    for path, body in (
        (f"/v1/alerts/{target}/ack", {}),
        (f"/v1/alerts/{target}/ack", {"reason": "x" * 5000}),
        (f"/v1/alerts/{target}/ack", {"reason": "ok", "extra": 1}),
        ("/v1/alerts/not-an-id/ack", {"reason": "ok"}),
        ("/v1/alerts/alrt_" + "0" * 32 + "/ack", {"reason": "ok"}),
    ):
        response = env.client.post(path, json=body, headers=auth)
        assert 400 <= response.status_code < 500, (path, body, response.status_code)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert env.client.get("/v1/alerts").status_code == 401


def test_a_model_restricted_token_sees_only_its_models_alerts(env: Env) -> None:
    raise_alerts(env)
    seen = env.client.get("/v1/alerts", headers=env.headers(env.tokens["other-model"])).json()["alerts"]
    assert [a["subject"] for a in seen] == ["model:other:1"]


def test_metrics_count_alerts_and_lag(env: Env) -> None:
    raise_alerts(env)
    listed = env.client.get("/v1/alerts", headers=env.headers(env.tokens["audit:read"])).json()["alerts"]
    high = sum(1 for a in listed if (a["rule"], a["severity"]) == ("governance.event", "high"))
    watcher = workspace_watcher(env.ws)
    cursor = watcher.cursor()
    text = env.client.get("/metrics").text
    assert high >= 2
    assert f'mlwarden_alerts_raised_total{{rule="governance.event",severity="high"}} {float(high)}' in text
    assert f"mlwarden_watch_entries_processed_total {float(cursor)}" in text
    assert f"mlwarden_watch_lag_entries {float(env.ws.log.size() - cursor)}" in text
