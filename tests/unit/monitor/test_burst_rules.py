"""Auth failure and denial bursts, governance and integrity events, custom rules: fire on attacks, quiet on normal."""

from __future__ import annotations

from mlwarden.monitor.alerts_store import list_alerts
from mlwarden.workspace import Workspace
from tests.unit.monitor.conftest import MakeWatcher, drain


def summary(claimed: dict[str, int], sources: dict[str, int], status: str = "401") -> dict[str, object]:
    count = sum(claimed.values())
    return {"count": count, "statuses": {status: count}, "claimed_principals": claimed, "sources": sources,
            "reasons": {"bad token": count}}  # fmt: skip


def rules_of(ws: Workspace) -> list[str]:
    return sorted(a.alert.rule for a in list_alerts(ws))


def test_credential_stuffing_from_one_address_fires_once(ws: Workspace, make_watcher: MakeWatcher) -> None:
    for i in range(6):  # 6 windows of 5 failures each, every guess a different token id, one address
        ws.log.append(kind="request.rejected_summary", subject="requests:unauthenticated", principal="system:gateway",
                      body=summary({f"tok{i}{j}": 1 for j in range(5)}, {"203.0.113.9": 5}))  # fmt: skip
    drain(make_watcher())
    found = [a.alert for a in list_alerts(ws)]
    assert [a.rule for a in found] == ["auth.failure_burst"]
    assert found[0].subject == "source:203.0.113.9"
    assert (found[0].details or {})["count"] >= 20


def test_the_same_volume_of_failures_spread_over_addresses_is_quiet(ws: Workspace, make_watcher: MakeWatcher) -> None:
    for i in range(6):
        addresses = {f"198.51.100.{i * 5 + j}": 1 for j in range(5)}
        ws.log.append(kind="request.rejected_summary", subject="requests:unauthenticated", principal="system:gateway",
                      body=summary({f"tok{i}{j}": 1 for j in range(5)}, addresses))  # fmt: skip
    drain(make_watcher())
    assert rules_of(ws) == []


def test_rejections_other_than_401_are_not_auth_failures(ws: Workspace, make_watcher: MakeWatcher) -> None:
    for _ in range(6):
        ws.log.append(kind="request.rejected_summary", subject="requests:unauthenticated", principal="system:gateway",
                      body=summary({"x": 5}, {"203.0.113.9": 5}, status="413"))  # fmt: skip
    drain(make_watcher())
    assert rules_of(ws) == []


def test_scope_probing_by_one_principal_fires(ws: Workspace, make_watcher: MakeWatcher) -> None:
    for i in range(20):
        ws.log.append(kind="access.denied", subject=f"model:m{i}", principal="token:probe", body={"allow": False})
    for i in range(19):  # many principals, one denial each: normal noise
        ws.log.append(kind="access.denied", subject="model:m", principal=f"token:user{i}", body={"allow": False})
    drain(make_watcher())
    found = [a.alert for a in list_alerts(ws)]
    assert [(a.rule, a.principal) for a in found] == [("access.denied_burst", "token:probe")]


def test_admin_token_and_tampered_stage_raise_governance_alerts(ws: Workspace, make_watcher: MakeWatcher) -> None:
    ws.log.append(kind="token.created", subject="token:a", principal="alice", body={"scopes": ["inference:read"]})
    ws.log.append(kind="token.created", subject="token:b", principal="alice", body={"scopes": ["admin"]})
    ws.log.append(kind="model.stage_tampered", subject="model:bc:1", principal="system:gateway", body={})
    ws.log.append(kind="ledger.index_tampered", subject="decision:x", principal="system:gateway", body={})
    drain(make_watcher())
    found = sorted((a.alert.rule, a.alert.subject) for a in list_alerts(ws))
    assert found == [("governance.event", "model:bc:1"), ("governance.event", "token:b"),
                     ("ledger.integrity", "decision:x")]  # fmt: skip


def test_custom_threshold_rule_counts_matching_entries_only(ws: Workspace, make_watcher: MakeWatcher) -> None:
    rules = """
alerts:
  custom:
    - id: custom.exports
      kind: privacy.*
      where: {principal: mallory}
      threshold: 3
      window: 60
      severity: low
"""
    for who in ("alice", "alice", "alice", "mallory", "mallory", "mallory"):
        ws.log.append(kind="privacy.exported", subject="subject", principal=who, body={})
    drain(make_watcher(rules))
    found = [a.alert for a in list_alerts(ws)]
    assert [(a.rule, a.principal, a.severity.value) for a in found] == [("custom.exports", "mallory", "low")]


def test_disabled_rule_stays_quiet(ws: Workspace, make_watcher: MakeWatcher) -> None:
    for i in range(25):
        ws.log.append(kind="access.denied", subject=f"model:m{i}", principal="token:probe", body={})
    drain(make_watcher("alerts:\n  access.denied_burst: {enabled: false}\n"))
    assert rules_of(ws) == []


def test_feedback_spike_fires_on_a_rate_not_on_a_count(ws: Workspace, make_watcher: MakeWatcher) -> None:
    busy, quiet = "model:busy:1", "model:quiet:1"
    ws.log.append(kind="prediction", subject=busy, principal="p", body={"decision_ids": [str(i) for i in range(5000)]})
    ws.log.append(kind="prediction", subject=quiet, principal="p", body={"decision_ids": [str(i) for i in range(50)]})
    for model in (busy, quiet):
        for i in range(12):
            ws.log.append(kind="feedback", subject=model, principal="u", body={"feedback_id": f"{model}{i}"})
    drain(make_watcher())
    assert [(a.alert.rule, a.alert.subject) for a in list_alerts(ws)] == [("feedback.spike", quiet)]
