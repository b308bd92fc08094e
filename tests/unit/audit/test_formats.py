"""SIEM formats: every entry kind and every alert validated against the published OCSF 1.5.0 schema; ECS fields.

The OCSF schema comes from the ``ocsf-json-schema`` package (the schema.ocsf.io exports, 1.0-1.8,
bundled, turned into JSON Schema 2020-12), never a hand-copied subset. No maintained package
carries the ECS field reference for Python, so the ECS checks state the allowed values of the
categorisation fields as the ECS reference lists them.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema  # type: ignore[import-untyped]

from mlwarden.audit.query import AuditRow
from mlwarden.monitor.alert import Alert, Severity, alert_id
from mlwarden.monitor.formats import (
    OCSF_VERSION,
    alert_to_ecs,
    alert_to_ocsf,
    entry_to_ecs,
    entry_to_ocsf,
)

TIME = "2026-11-26T10:15:30.123456Z"
KINDS: list[tuple[str, str, dict[str, Any]]] = [
    (
        "prediction",
        "model:bc:1",
        {
            "model": "bc",
            "version": 1,
            "decision_ids": ["d-1", "d-2"],
            "v": 2,
            "inputs": ["c0ffee"],
            "outputs": ["beef"],
            "latency_ms": 0.8,
        },
    ),
    (
        "feedback",
        "model:bc:1",
        {
            "feedback_id": "f-1",
            "decision_id": "d-1",
            "kind": "incorrect",
            "expected": {"label": 1},
            "comment": "Jane Doe says wrong",
        },
    ),
    ("access.allowed", "ledger", {"decision": "allow", "reason": "scope audit:read"}),
    ("access.denied", "model:bc", {"decision": "deny", "reason": "missing scope inference:read"}),
    ("request.rejected", "/v1/models/bc/predict", {"reason": "inputs[0]: expected 30 values", "status": 422}),
    ("request.rejected_summary", "requests:unauthenticated", {"count": 4, "statuses": {"401": 4}}),
    ("model.registered", "model:bc:1", {"sha256": "ab" * 32}),
    ("model.promoted", "model:bc:1", {"stage": "production"}),
    ("model.stage_tampered", "model:bc:1", {"row": "model:bc:1"}),
    ("model.promotion_refused", "model:bc:2", {"reason": "gate failed"}),
    ("token.created", "token:abc", {"id": "abc", "scopes": ["admin"]}),
    ("token.revoked", "token:abc", {"name": "ci"}),
    ("gate.run", "model:bc:2", {"passed": True}),
    ("dataset.integrity_failed", "dataset:train:1", {"message": "hash differs"}),
    ("privacy.erased", "privacy", {"erasure_id": "e-1", "keys": 3}),
    ("alert.raised", "model:bc", {"rule": "auth.failure_burst"}),
    ("external.deploy", "service:web", {"n": 1}),
]


@functools.cache
def _ocsf_schema(class_name: str) -> Any:
    schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=OCSF_VERSION)).get_class_schema(class_name)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def _errors(class_name: str, event: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in _ocsf_schema(class_name).iter_errors(event)]


def _row(index: int, kind: str, subject: str, body: dict[str, Any]) -> AuditRow:
    return AuditRow(index=index, kind=kind, time=TIME, principal="token:k1", subject=subject, body=body)


def _alert(severity: Severity, *, principal: str | None, subject: str | None) -> Alert:
    return Alert(alert_id=alert_id("auth.failure_burst", 10, 42), rule="auth.failure_burst", severity=severity,
                 summary="40 failed authentications from 203.0.113.9 in 60 s", first_index=10, last_index=42,
                 time=TIME, principal=principal, subject=subject, details={"count": 40, "window_s": 60},
                 entry_index=43)  # fmt: skip


@pytest.mark.parametrize(("kind", "subject", "body"), KINDS, ids=[k for k, _s, _b in KINDS])
def test_every_entry_kind_is_a_valid_ocsf_api_activity(kind: str, subject: str, body: dict[str, Any]) -> None:
    """Each kind renders as API Activity (6003) that the published schema accepts."""
    event = entry_to_ocsf(7, _row(7, kind, subject, body))
    assert _errors("api_activity", event) == []
    assert (event["class_uid"], event["type_uid"]) == (6003, 600300 + event["activity_id"])
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert event["time"] == (datetime(2026, 11, 26, 10, 15, 30, 123456, tzinfo=UTC) - epoch) // timedelta(
        milliseconds=1
    )
    assert event["metadata"]["sequence"] == 7
    assert event["actor"]["user"]["name"] == "token:k1"


@pytest.mark.parametrize(
    ("kind", "activity", "status"),
    [
        ("prediction", 2, 1),
        ("feedback", 1, 1),
        ("token.revoked", 4, 1),
        ("model.promoted", 3, 1),
        ("access.denied", 99, 2),
        ("request.rejected", 99, 2),
        ("model.stage_tampered", 99, 2),
        ("external.deploy", 99, 1),
    ],
)
def test_activity_and_status_follow_the_kind(kind: str, activity: int, status: int) -> None:
    """Read for predictions, Create/Update/Delete by verb, Other otherwise; refusals are Failure."""
    event = entry_to_ocsf(1, _row(1, kind, "s:x", {}))
    assert (event["activity_id"], event["status_id"]) == (activity, status)


def test_the_validator_refuses_a_broken_event() -> None:
    """The schema check can fail: without an actor, or with a made-up activity, the event is refused."""
    event = entry_to_ocsf(1, _row(1, "prediction", "model:bc:1", {}))
    assert any("actor" in e for e in _errors("api_activity", {k: v for k, v in event.items() if k != "actor"}))
    assert _errors("api_activity", {**event, "activity_id": 42}) != []
    assert _errors("api_activity", {**event, "surprise": 1}) != []


@pytest.mark.parametrize("severity", list(Severity))
@pytest.mark.parametrize(("principal", "subject"), [("token:k1", "model:bc"), (None, None)])
def test_alerts_are_valid_ocsf_detection_findings(
    severity: Severity, principal: str | None, subject: str | None
) -> None:
    """An alert renders as Detection Finding (2004) that the published schema accepts, severity mapped in order."""
    event = alert_to_ocsf(_alert(severity, principal=principal, subject=subject))
    assert _errors("detection_finding", event) == []
    assert event["severity_id"] == 2 + severity.rank
    assert event["finding_info"]["uid"] == alert_id("auth.failure_burst", 10, 42)
    assert ("evidences" in event) == (principal is not None)


def test_free_text_a_person_typed_never_leaves() -> None:
    """Feedback comments and expected values stay out of both formats; commitments and ids go."""
    row = _row(3, "feedback", "model:bc:1", KINDS[1][2])
    for doc in (entry_to_ocsf(3, row), entry_to_ecs(3, row)):
        text = json.dumps(doc)
        assert "Jane Doe" not in text
        assert '"expected"' not in text
        assert "d-1" in text


ECS_KINDS = {"alert", "asset", "enrichment", "event", "metric", "state", "pipeline_error", "signal"}
ECS_CATEGORIES = {"api", "authentication", "configuration", "database", "driver", "email", "file", "host", "iam",
                  "intrusion_detection", "library", "malware", "network", "package", "process", "registry", "session",
                  "threat", "vulnerability", "web"}  # fmt: skip
ECS_TYPES = {"access", "admin", "allowed", "change", "connection", "creation", "deletion", "denied", "end", "error",
             "group", "indicator", "info", "installation", "protocol", "start", "user"}  # fmt: skip
ECS_OUTCOMES = {"failure", "success", "unknown"}


def _check_ecs(doc: dict[str, Any]) -> None:
    event = doc["event"]
    assert doc["@timestamp"] == TIME
    assert event["kind"] in ECS_KINDS
    assert set(event["category"]) <= ECS_CATEGORIES
    assert set(event["type"]) <= ECS_TYPES
    assert event.get("outcome", "unknown") in ECS_OUTCOMES
    assert isinstance(event["severity"], int)


@pytest.mark.parametrize(("kind", "subject", "body"), KINDS, ids=[k for k, _s, _b in KINDS])
def test_every_entry_kind_is_an_ecs_event(kind: str, subject: str, body: dict[str, Any]) -> None:
    """ECS categorisation fields take allowed values; the action is the kind, the user the principal."""
    doc = entry_to_ecs(9, _row(9, kind, subject, body))
    _check_ecs(doc)
    assert (doc["event"]["action"], doc["user"]["name"], doc["event"]["sequence"]) == (kind, "token:k1", 9)
    failures = {"access.denied", "request.rejected", "request.rejected_summary", "model.stage_tampered",
                "model.promotion_refused", "dataset.integrity_failed"}  # fmt: skip
    assert doc["event"]["outcome"] == ("failure" if kind in failures else "success")


def test_alerts_are_ecs_alerts() -> None:
    """An alert is ``event.kind: alert`` with its rule under ``rule.*``."""
    doc = alert_to_ecs(_alert(Severity.HIGH, principal="token:k1", subject="model:bc"))
    _check_ecs(doc)
    assert (doc["event"]["kind"], doc["rule"]["id"], doc["user"]["name"]) == ("alert", "auth.failure_burst", "token:k1")
    assert doc["mlwarden"]["alert"]["first_index"] == 10
