"""SIEM formats: ledger entries and alerts as OCSF 1.5 and ECS documents.

OCSF (schema 1.5.0): every ledger entry becomes an **API Activity** event (class 6003): the
ledger records calls made to mlwarden, by a principal, on a subject. The activity says what
kind of call it was: ``prediction`` is Read, ``feedback`` and ``*.created``/``*.registered``
/``*.approved`` are Create, ``*.revoked``/``*.erased`` Delete, stage and alias changes Update,
and every other kind (access decisions, rejections, gate runs, user records...) is Other (99)
with the entry kind as ``api.operation``. Denials, rejections, refusals and integrity
failures have status Failure. An alert becomes a **Detection Finding** (class 2004).

ECS: ``@timestamp``, ``event.kind`` (``event`` for entries, ``alert`` for alerts),
``event.category``/``event.type`` from the ECS allowed values, ``event.action`` (the entry
kind or the rule id), ``event.outcome``, ``user.name`` (the principal); mlwarden's own
fields under ``mlwarden.*``.

Neither carries a secret or personal data: entry bodies carry commitments to sealed payloads,
never the payloads, and the few body fields that may hold free text a person wrote (feedback
comments and expected values) are left out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mlwarden import __version__
from mlwarden.ledger.entry import Entry
from mlwarden.monitor.alert import Alert, Severity

OCSF_VERSION = "1.5.0"
ECS_VERSION = "8.17.0"
PRODUCT = {"name": "mlwarden", "vendor_name": "mlwarden", "version": __version__}
REDACTED_BODY_KEYS = frozenset({"comment", "expected"})
"""Body fields that may hold text a person typed: never sent to a SIEM."""

API_ACTIVITY = 6003
DETECTION_FINDING = 2004
CREATE, READ, UPDATE, DELETE, OTHER = 1, 2, 3, 4, 99
SUCCESS, FAILURE = 1, 2
INFORMATIONAL, LOW, MEDIUM, HIGH, CRITICAL = 1, 2, 3, 4, 5
_ACTIVITY_NAMES = {CREATE: "Create", READ: "Read", UPDATE: "Update", DELETE: "Delete", OTHER: "Other"}
_SEVERITY_NAMES = {INFORMATIONAL: "Informational", LOW: "Low", MEDIUM: "Medium", HIGH: "High", CRITICAL: "Critical"}
_ALERT_SEVERITY = {Severity.LOW: LOW, Severity.MEDIUM: MEDIUM, Severity.HIGH: HIGH, Severity.CRITICAL: CRITICAL}

_CREATE_SUFFIXES = ("created", "registered", "approved", "raised", "fitted", "attached")
_DELETE_SUFFIXES = ("revoked", "erased")
_UPDATE_SUFFIXES = ("promoted", "rolled_back", "alias_set", "batch_released", "acknowledged", "loaded")
_FAILURE_MARKS = ("denied", "rejected", "refused", "failed", "tampered")
_ALARMING_MARKS = ("tampered", "integrity_failed")


def _epoch_ms(time: str) -> int:
    """An RFC 3339 UTC time as milliseconds since 1970 (OCSF ``timestamp_t``)."""
    moment = datetime.fromisoformat(time.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _verb(kind: str) -> str:
    return kind.rsplit(".", 1)[-1]


def ocsf_activity(kind: str) -> int:
    """The API Activity ``activity_id`` for an entry kind (see the module docstring)."""
    verb = _verb(kind)
    if kind == "prediction":
        return READ
    if kind == "feedback" or verb.endswith(_CREATE_SUFFIXES):
        return CREATE
    if verb.endswith(_DELETE_SUFFIXES):
        return DELETE
    if verb.endswith(_UPDATE_SUFFIXES):
        return UPDATE
    return OTHER


def failed(kind: str) -> bool:
    """Whether an entry of ``kind`` records something refused or found wrong."""
    return any(mark in _verb(kind) for mark in _FAILURE_MARKS)


def _severity(kind: str) -> int:
    if any(mark in _verb(kind) for mark in _ALARMING_MARKS):
        return HIGH
    return LOW if failed(kind) else INFORMATIONAL


def safe_body(body: dict[str, Any]) -> dict[str, Any]:
    """The entry body without fields a person may have typed into (comments, expected values)."""
    return {key: value for key, value in body.items() if key not in REDACTED_BODY_KEYS}


def _metadata(uid: str, *, sequence: int | None = None, correlation: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"product": PRODUCT, "version": OCSF_VERSION, "uid": uid, "log_name": "ledger"}
    if sequence is not None:
        meta["sequence"] = sequence
    if correlation is not None:
        meta["correlation_uid"] = correlation
    return meta


def _decision_ids(row: Entry) -> list[str]:
    ids = row.body.get("decision_ids")
    found = [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []
    single = row.body.get("decision_id")
    return found + ([single] if isinstance(single, str) else [])


def entry_to_ocsf(index: int, entry: Entry) -> dict[str, Any]:
    """An OCSF 1.5 API Activity event (class 6003) for the ledger entry at ``index``."""
    activity = _ACTIVITY_NAMES[ocsf_activity(entry.kind)]
    activity_id = ocsf_activity(entry.kind)
    severity_id = _severity(entry.kind)
    status_id = FAILURE if failed(entry.kind) else SUCCESS
    decisions = _decision_ids(entry)
    event: dict[str, Any] = {
        "class_uid": API_ACTIVITY,
        "class_name": "API Activity",
        "category_uid": 6,
        "category_name": "Application Activity",
        "activity_id": activity_id,
        "activity_name": activity,
        "type_uid": API_ACTIVITY * 100 + activity_id,
        "type_name": f"API Activity: {activity}",
        "severity_id": severity_id,
        "severity": _SEVERITY_NAMES[severity_id],
        "status_id": status_id,
        "status": "Failure" if status_id == FAILURE else "Success",
        "time": _epoch_ms(entry.time),
        "message": f"{entry.kind} on {entry.subject} by {entry.principal}",
        "metadata": _metadata(f"ledger:{index}", sequence=index, correlation=decisions[0] if decisions else None),
        "actor": {"user": {"name": entry.principal, "uid": entry.principal}},
        "api": {
            "operation": entry.kind,
            "service": {"name": "mlwarden"},
            "request": {"uid": decisions[0] if decisions else f"ledger:{index}"},
        },
        # The ledger records who called, not from where: the endpoint is named by the principal.
        "src_endpoint": {"name": entry.principal},
        "resources": [{"name": entry.subject, "uid": entry.subject, "type": entry.subject.split(":", 1)[0]}],
        "unmapped": {"ledger_index": index, "subject": entry.subject, "body": safe_body(entry.body)},
    }
    status = entry.body.get("status")
    if isinstance(status, int) and not isinstance(status, bool):
        event["status_code"] = str(status)
    return event


def alert_to_ocsf(alert: Alert) -> dict[str, Any]:
    """An OCSF 1.5 Detection Finding (class 2004) for ``alert``."""
    severity_id = _ALERT_SEVERITY[alert.severity]
    evidence_range = {"first_index": alert.first_index, "last_index": alert.last_index}
    finding: dict[str, Any] = {
        "uid": alert.alert_id,
        "title": alert.summary,
        "types": [alert.rule],
        "analytic": {"name": alert.rule, "uid": alert.rule, "type_id": 1, "type": "Rule"},
        "related_events": [{"uid": f"ledger:{i}"} for i in dict.fromkeys((alert.first_index, alert.last_index))],
    }
    event: dict[str, Any] = {
        "class_uid": DETECTION_FINDING,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": CREATE,
        "activity_name": "Create",
        "type_uid": DETECTION_FINDING * 100 + CREATE,
        "type_name": "Detection Finding: Create",
        "severity_id": severity_id,
        "severity": _SEVERITY_NAMES[severity_id],
        "status_id": 1,
        "status": "New",
        "is_alert": True,
        "time": _epoch_ms(alert.time),
        "message": alert.summary,
        "metadata": _metadata(alert.alert_id, sequence=alert.entry_index),
        "finding_info": finding,
        "unmapped": {**evidence_range, "details": alert.details or {}, "entry_index": alert.entry_index},
    }
    if alert.subject is not None:
        event["resources"] = [{"name": alert.subject, "uid": alert.subject, "type": alert.subject.split(":", 1)[0]}]
    if alert.principal is not None:
        event["evidences"] = [{"actor": {"user": {"name": alert.principal, "uid": alert.principal}}}]
    return event


def _ecs_classes(kind: str) -> tuple[list[str], list[str]]:
    """``event.category`` and ``event.type`` (ECS allowed values) for an entry kind."""
    space = kind.split(".", 1)[0]
    activity = ocsf_activity(kind)
    change = {CREATE: "creation", DELETE: "deletion", UPDATE: "change"}.get(activity, "info")
    if space == "access":
        return ["iam"], ["denied" if failed(kind) else "allowed"]
    if space == "request":
        return ["web"], ["denied", "access"]
    if space == "token":
        return ["iam"], [change, "user"] if change != "info" else ["info"]
    if space in ("model", "dataset", "data", "gate", "policy"):
        return ["configuration"], [change]
    if space == "ledger":
        return ["database"], ["error"] if failed(kind) else ["info"]
    if space == "alert":
        return ["intrusion_detection"], ["indicator"]
    return ["api"], ["access" if activity == READ else change]


def entry_to_ecs(index: int, entry: Entry) -> dict[str, Any]:
    """An ECS document for the ledger entry at ``index``."""
    category, types = _ecs_classes(entry.kind)
    return {
        "@timestamp": entry.time,
        "ecs": {"version": ECS_VERSION},
        "message": f"{entry.kind} on {entry.subject} by {entry.principal}",
        "event": {
            "kind": "event",
            "category": category,
            "type": types,
            "action": entry.kind,
            "outcome": "failure" if failed(entry.kind) else "success",
            "id": f"ledger:{index}",
            "sequence": index,
            "dataset": "mlwarden.ledger",
            "module": "mlwarden",
            "provider": "mlwarden-ledger",
            "severity": _severity(entry.kind),
        },
        "user": {"name": entry.principal, "id": entry.principal},
        "observer": {"product": "mlwarden", "vendor": "mlwarden", "version": __version__, "type": "gateway"},
        "labels": {"subject": entry.subject},
        "mlwarden": {"ledger": {"index": index, "subject": entry.subject, "body": safe_body(entry.body)}},
    }


def alert_to_ecs(alert: Alert) -> dict[str, Any]:
    """An ECS alert document for ``alert`` (``event.kind: alert``, the rule under ``rule.*``)."""
    doc: dict[str, Any] = {
        "@timestamp": alert.time,
        "ecs": {"version": ECS_VERSION},
        "message": alert.summary,
        "event": {
            "kind": "alert",
            "category": ["intrusion_detection"],
            "type": ["indicator"],
            "action": alert.rule,
            "id": alert.alert_id,
            "dataset": "mlwarden.alerts",
            "module": "mlwarden",
            "provider": "mlwarden-watch",
            "severity": _ALERT_SEVERITY[alert.severity],
        },
        "rule": {"id": alert.rule, "name": alert.rule, "ruleset": "mlwarden"},
        "observer": {"product": "mlwarden", "vendor": "mlwarden", "version": __version__, "type": "gateway"},
        "mlwarden": {
            "alert": {
                "id": alert.alert_id,
                "severity": alert.severity.value,
                "first_index": alert.first_index,
                "last_index": alert.last_index,
                "entry_index": alert.entry_index,
                "details": alert.details or {},
            }
        },
    }
    if alert.principal is not None:
        doc["user"] = {"name": alert.principal, "id": alert.principal}
    if alert.subject is not None:
        doc["labels"] = {"subject": alert.subject}
    return doc
