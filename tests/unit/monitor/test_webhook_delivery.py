"""A webhook receiver down for minutes, then up: every alert arrives once per idempotency key, signed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import structlog
from fastapi.testclient import TestClient
from sqlalchemy import update

from mlwarden.api.app import create_app
from mlwarden.config import Settings
from mlwarden.monitor.delivery import DeliveryLoop
from mlwarden.monitor.ledger_alerts import LedgerAlerts
from mlwarden.monitor.outbox import RetryPolicy, backlog, deliver_due
from mlwarden.monitor.sinks.webhook import WebhookSink
from mlwarden.monitor.webhook_receiver import WebhookReceiver, start_receiver
from mlwarden.monitor.webhook_signature import SignatureInvalid, sign_webhook, verify_webhook
from mlwarden.store.schema import alert_outbox
from mlwarden.workspace import Workspace
from tests.support.alerts import raise_alert
from tests.unit.monitor.ports import free_port

SECRET = b"0123456789abcdef0123456789abcdef"
OPEN_SINKS: list[WebhookSink] = []


def _sink(url: str, **kwargs: float) -> WebhookSink:
    sink = WebhookSink(name="soc", url=url, secret=SECRET, **kwargs)  # type: ignore[arg-type]
    OPEN_SINKS.append(sink)
    return sink


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def receiver_factory(tmp_path: Path) -> Iterator[list[WebhookReceiver]]:
    started: list[WebhookReceiver] = []
    yield started
    for sink in OPEN_SINKS:
        sink.close()
    OPEN_SINKS.clear()
    for receiver in started:
        receiver.shutdown()
        receiver.server_close()


def _start(started: list[WebhookReceiver], port: int, out: Path) -> WebhookReceiver:
    receiver, _thread = start_receiver("127.0.0.1", port, secret=SECRET, out=out)
    started.append(receiver)
    return receiver


def test_receiver_down_for_minutes_loses_nothing(
    workspace: Workspace, tmp_path: Path, port: int, receiver_factory: list[WebhookReceiver]
) -> None:
    """Alerts raised while the receiver is down are all delivered once it is back, each once, each verified."""
    sink = _sink(f"http://127.0.0.1:{port}/alerts", timeout_seconds=2)
    source = LedgerAlerts(workspace.log, workspace.engine)
    policy = RetryPolicy(base_seconds=1, max_seconds=60)
    alerts = [raise_alert(workspace, [sink], principal=f"tok_{n}") for n in range(5)]
    start = time.time() + 1
    # Down: passes over ten simulated minutes, each makes at most one (failed) attempt.
    attempts = 0
    for minute in range(0, 600, 30):
        report = deliver_due(workspace.engine, [sink], start + minute, alerts=source, policy=policy,
                             clock=lambda m=minute: start + m)  # type: ignore[misc]  # fmt: skip
        assert report.delivered == []
        attempts += len(report.failed)
    assert 1 <= attempts <= 20
    (status,) = backlog(workspace.engine, start + 600)
    assert status.pending == 5
    assert status.oldest_pending_seconds >= 600
    # Back up: everything arrives.
    out = tmp_path / "received.jsonl"
    receiver = _start(receiver_factory, port, out)
    report = deliver_due(workspace.engine, [sink], start + 1200, alerts=source, policy=policy,
                         clock=lambda: start + 1200)  # fmt: skip
    assert len(report.delivered) == 5
    assert not report.failed
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(line["idempotency_key"] for line in lines) == sorted(f"{a.alert_id}/soc" for a in alerts)
    assert {line["alert"]["alert_id"]: line["alert"] for line in lines} == {a.alert_id: a.to_dict() for a in alerts}
    assert (receiver.stored, receiver.rejected) == (5, 0)
    assert backlog(workspace.engine, start + 1200) == []


def test_a_redelivery_after_a_crash_is_dropped_by_its_key(
    workspace: Workspace, tmp_path: Path, port: int, receiver_factory: list[WebhookReceiver]
) -> None:
    """Crash between sending and marking delivered: sent again with the same key, written once."""
    out = tmp_path / "received.jsonl"
    receiver = _start(receiver_factory, port, out)
    sink = _sink(receiver.url)
    alert = raise_alert(workspace, [sink])
    source = LedgerAlerts(workspace.log, workspace.engine)
    assert len(deliver_due(workspace.engine, [sink], time.time() + 1, alerts=source).delivered) == 1
    with workspace.engine.begin() as conn:  # as if the process died before recording the delivery
        conn.execute(update(alert_outbox).values(delivered_at=None, next_attempt_at=0))
    assert len(deliver_due(workspace.engine, [sink], time.time() + 1, alerts=source).delivered) == 1
    assert (receiver.stored, receiver.duplicates) == (1, 1)
    assert [json.loads(line)["idempotency_key"] for line in out.read_text().splitlines()] == [f"{alert.alert_id}/soc"]


def test_a_tampered_body_fails_verification(tmp_path: Path, port: int, receiver_factory: list[WebhookReceiver]) -> None:
    """The signature covers the exact body and the timestamp: any change is refused (401, not written)."""
    out = tmp_path / "received.jsonl"
    receiver = _start(receiver_factory, port, out)
    body = json.dumps({"alert_id": "alrt_1", "severity": "critical"}).encode()
    now = int(time.time())
    headers = {**sign_webhook(SECRET, body, now), "Idempotency-Key": "alrt_1/soc"}
    verify_webhook(SECRET, headers, body)  # the genuine one verifies
    tampered = body.replace(b"critical", b"low     ")
    with pytest.raises(SignatureInvalid, match="does not match"):
        verify_webhook(SECRET, headers, tampered)
    with pytest.raises(SignatureInvalid, match="does not match"):
        verify_webhook(b"another-secret-of-enough-length", headers, body)
    with pytest.raises(SignatureInvalid, match="does not match"):  # a replay with a fresh timestamp
        verify_webhook(SECRET, {**headers, "X-Mlwarden-Timestamp": str(now + 1)}, body)
    with pytest.raises(SignatureInvalid, match="away from now"):
        verify_webhook(SECRET, headers, body, now=now + 3600)
    answer = httpx.post(receiver.url, content=tampered, headers=headers, timeout=10)
    assert answer.status_code == 401
    assert httpx.post(receiver.url, content=body, headers=headers, timeout=10).status_code == 200
    assert (receiver.stored, receiver.rejected) == (1, 1)
    assert len(out.read_text().splitlines()) == 1


def test_rotation_accepts_either_signature() -> None:
    """During a secret rotation a sender may send two v1 signatures; one valid one is enough, none is refused."""
    body = b'{"a":1}'
    new = sign_webhook(SECRET, body, 100)["X-Mlwarden-Signature"]
    old = sign_webhook(b"old-secret-0123456789", body, 100)["X-Mlwarden-Signature"]
    headers = {"X-Mlwarden-Timestamp": "100", "X-Mlwarden-Signature": f"{old}, {new}"}
    verify_webhook(SECRET, headers, body, now=100)
    with pytest.raises(SignatureInvalid):
        verify_webhook(SECRET, {**headers, "X-Mlwarden-Signature": old}, body, now=100)
    with pytest.raises(SignatureInvalid, match="no X-Mlwarden-Signature"):
        verify_webhook(SECRET, {"X-Mlwarden-Timestamp": "100"}, body, now=100)


def test_unreachable_sink_shows_in_metrics_and_logs(
    workspace: Workspace, port: int, receiver_factory: list[WebhookReceiver]
) -> None:
    """The gateway's /metrics reports the sink's backlog; the delivery loop logs it as unreachable, once."""
    sink = _sink(f"http://127.0.0.1:{port}/", timeout_seconds=2)
    for n in range(3):
        raise_alert(workspace, [sink], principal=f"tok_{n}")
    loop = DeliveryLoop(workspace.engine, [sink], LedgerAlerts(workspace.log, workspace.engine),
                        policy=RetryPolicy(base_seconds=0, max_seconds=0))  # fmt: skip
    with structlog.testing.capture_logs() as logs:
        loop.run_once()
        loop.run_once()
    warnings = [e for e in logs if e["event"] == "alert_sink_unreachable"]
    assert len(warnings) == 1
    assert warnings[0]["sink"] == "soc"
    assert warnings[0]["pending"] == 3
    app = create_app(workspace.options, Settings(gc_freeze=False))
    with TestClient(app) as client:
        text = client.get("/metrics").text
    assert 'mlwarden_outbox_pending{sink="soc"} 3.0' in text
    assert 'mlwarden_outbox_failed_attempts{sink="soc"} 2.0' in text
    assert 'mlwarden_outbox_oldest_pending_seconds{sink="soc"}' in text


def test_the_delivery_loop_thread_delivers_when_ticked(
    workspace: Workspace, tmp_path: Path, port: int, receiver_factory: list[WebhookReceiver]
) -> None:
    """The watcher's tick wakes the thread; the alert reaches the receiver without waiting for the poll."""
    out = tmp_path / "received.jsonl"
    receiver = _start(receiver_factory, port, out)
    sink = _sink(receiver.url)
    loop = DeliveryLoop(workspace.engine, [sink], LedgerAlerts(workspace.log, workspace.engine), poll_seconds=3600)
    loop.start()
    try:
        with workspace.log.transaction():
            pass
        alert = raise_alert(workspace, [sink])
        with loop.passed:
            before = loop.passes
            loop.tick()
            assert loop.passed.wait_for(lambda: loop.passes > before, timeout=30)
    finally:
        loop.stop()
    assert receiver.stored == 1
    assert json.loads(out.read_text())["idempotency_key"] == f"{alert.alert_id}/soc"


def test_a_receiver_that_refuses_the_signature_keeps_the_row(
    workspace: Workspace, tmp_path: Path, port: int, receiver_factory: list[WebhookReceiver]
) -> None:
    """Signed with another secret: the receiver answers 401, the attempt fails, the row waits (not dropped)."""
    receiver = _start(receiver_factory, port, tmp_path / "received.jsonl")
    sink = WebhookSink(name="soc", url=receiver.url, secret=b"not-the-receivers-secret-at-all")
    OPEN_SINKS.append(sink)
    raise_alert(workspace, [sink])
    report = deliver_due(workspace.engine, [sink], time.time() + 1,
                         alerts=LedgerAlerts(workspace.log, workspace.engine))  # fmt: skip
    assert report.failed == {"soc": "webhook soc: receiver answered HTTP 401"}
    assert (receiver.stored, receiver.rejected) == (0, 1)
    (status,) = backlog(workspace.engine, time.time())
    assert (status.pending, status.failed_attempts) == (1, 1)
