"""The outbox: idempotent enqueue, backoff, bounded passes, and rows that the ledger does not back."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, text, update

from mlwarden.monitor.alert import Severity
from mlwarden.monitor.ledger_alerts import LedgerAlerts
from mlwarden.monitor.outbox import RetryPolicy, backlog, deliver_due, enqueue, idempotency_key
from mlwarden.monitor.sinks.jsonl_file import JsonLinesSink
from mlwarden.monitor.sinks.webhook import WebhookSink
from mlwarden.store.schema import alert_outbox
from mlwarden.workspace import Workspace
from tests.support.alerts import raise_alert
from tests.unit.monitor.ports import closed_port

SECRET = b"0123456789abcdef0123456789abcdef"


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _rows(ws: Workspace) -> list[dict[str, Any]]:
    with ws.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(alert_outbox).order_by(alert_outbox.c.created))]


def test_the_same_alert_enqueued_twice_is_one_row_per_sink(workspace: Workspace, tmp_path: Path) -> None:
    """A replayed watcher enqueues an alert again: nothing is added, so nothing is delivered twice."""
    sinks = [JsonLinesSink(name="a", path=tmp_path / "a.jsonl"), JsonLinesSink(name="b", path=tmp_path / "b.jsonl")]
    alert = raise_alert(workspace, sinks)
    with workspace.engine.begin() as conn:
        assert enqueue(conn, alert, sinks) == 0
    rows = _rows(workspace)
    assert sorted(r["idempotency_key"] for r in rows) == [f"{alert.alert_id}/a", f"{alert.alert_id}/b"]
    assert all(r["entry_index"] == alert.entry_index for r in rows)


def test_a_sink_only_gets_alerts_at_or_above_its_severity(workspace: Workspace, tmp_path: Path) -> None:
    """min_severity: critical keeps a high alert out of that sink's rows."""
    loud = JsonLinesSink(name="pager", path=tmp_path / "p.jsonl", min_severity=Severity.CRITICAL)
    quiet = JsonLinesSink(name="archive", path=tmp_path / "a.jsonl")
    raise_alert(workspace, [loud, quiet], severity=Severity.HIGH)
    assert [r["sink"] for r in _rows(workspace)] == ["archive"]


def test_delivers_the_proven_ledger_alert_once(workspace: Workspace, tmp_path: Path) -> None:
    """A pass sends the alert as its ledger entry records it, marks it delivered; the next pass sends nothing."""
    sink = JsonLinesSink(name="archive", path=tmp_path / "a.jsonl")
    alert = raise_alert(workspace, [sink], with_index=False)  # the row does not even know the entry's index
    source = LedgerAlerts(workspace.log, workspace.engine)
    report = deliver_due(workspace.engine, [sink], 1e10, alerts=source)
    assert report.delivered == [idempotency_key(alert.alert_id, "archive")]
    assert deliver_due(workspace.engine, [sink], 1e10, alerts=source).delivered == []
    (line,) = _lines(sink.path)
    assert line["idempotency_key"] == f"{alert.alert_id}/archive"
    assert line["alert"] == alert.to_dict()  # entry_index found in the ledger


def test_a_forged_row_is_refused_not_delivered(workspace: Workspace, tmp_path: Path) -> None:
    """Rows inserted by someone who can write the database (no alert entry behind them) are never sent."""
    sink = JsonLinesSink(name="archive", path=tmp_path / "a.jsonl")
    real = raise_alert(workspace, [], rule="auth.failure_burst")
    forged = {"attempts": 0, "failures": 0, "next_attempt_at": 0.0, "created": 0.0, "sink": "archive"}
    with workspace.engine.begin() as conn:
        conn.execute(insert(alert_outbox), [
            # points at a real alert entry, but claims to be another alert
            {**forged, "idempotency_key": "alrt_x/archive", "alert_id": "alrt_x", "entry_index": real.entry_index,
             "after_index": 0},
            # points at an entry that is not an alert
            {**forged, "idempotency_key": "alrt_y/archive", "alert_id": "alrt_y", "entry_index": real.first_index,
             "after_index": 0},
            # no entry anywhere
            {**forged, "idempotency_key": "alrt_z/archive", "alert_id": "alrt_z", "entry_index": None,
             "after_index": 0},
        ])  # fmt: skip
    report = deliver_due(workspace.engine, [sink], 1e10, alerts=LedgerAlerts(workspace.log, workspace.engine))
    assert sorted(report.refused) == ["alrt_x/archive", "alrt_y/archive", "alrt_z/archive"]
    assert report.delivered == []
    assert not sink.path.exists()
    (status,) = backlog(workspace.engine, 1e10)
    assert (status.pending, status.refused) == (0, 3)


def test_a_rewritten_alert_entry_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    """Downgrading the stored alert entry (severity, principal) breaks its proof: the row is refused."""
    sink = JsonLinesSink(name="archive", path=tmp_path / "a.jsonl")
    alert = raise_alert(workspace, [sink])
    workspace.log.sign_head()
    with workspace.engine.begin() as conn:
        stored = conn.execute(text("SELECT entry FROM ledger_entries WHERE idx = :i"), {"i": alert.entry_index}).one()
        conn.execute(
            text("UPDATE ledger_entries SET entry = :e WHERE idx = :i"),
            {"e": stored[0].replace('"severity":"high"', '"severity":"low"'), "i": alert.entry_index},
        )
    report = deliver_due(workspace.engine, [sink], 1e10, alerts=LedgerAlerts(workspace.log, workspace.engine))
    assert report.refused == [f"{alert.alert_id}/archive"]
    assert not sink.path.exists()


def test_a_tampered_idempotency_key_is_not_what_is_sent(workspace: Workspace, tmp_path: Path) -> None:
    """The key sent is recomputed from the alert id and sink, never read from the row."""
    sink = JsonLinesSink(name="archive", path=tmp_path / "a.jsonl")
    alert = raise_alert(workspace, [sink])
    with workspace.engine.begin() as conn:
        conn.execute(update(alert_outbox).values(idempotency_key="someone-elses-key"))
    deliver_due(workspace.engine, [sink], 1e10, alerts=LedgerAlerts(workspace.log, workspace.engine))
    assert [line["idempotency_key"] for line in _lines(sink.path)] == [f"{alert.alert_id}/archive"]


def test_backoff_doubles_to_its_cap_with_jitter_below() -> None:
    """Delays: 1, 2, 4 ... capped at max_seconds; jitter only shortens, to no less than half."""
    policy = RetryPolicy(base_seconds=1.0, max_seconds=60.0)
    assert [policy.delay(n, lambda: 1.0) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert policy.delay(3, lambda: 0.0) == 2.0
    assert policy.delay(10_000, lambda: 1.0) == 60.0


def test_an_unreachable_sink_keeps_its_rows_and_backs_off(workspace: Workspace, tmp_path: Path) -> None:
    """Down receiver: one failed attempt per pass (bounded), rows kept, next attempt pushed out, other sinks served."""
    down = WebhookSink(name="soc", url=f"http://127.0.0.1:{closed_port()}/", secret=SECRET, timeout_seconds=2)
    archive = JsonLinesSink(name="archive", path=tmp_path / "a.jsonl")
    for n in range(4):
        raise_alert(workspace, [down, archive], principal=f"tok_{n}")
    source = LedgerAlerts(workspace.log, workspace.engine)
    policy = RetryPolicy(base_seconds=10, max_seconds=40)
    clock = [time.time() + 1]
    report = deliver_due(workspace.engine, [down, archive], clock[0], alerts=source, policy=policy,
                         clock=lambda: clock[0], rand=lambda: 1.0)  # fmt: skip
    assert list(report.failed) == ["soc"]
    assert report.waiting == 3
    assert len(report.delivered) == 4
    assert len(_lines(archive.path)) == 4
    status = {b.sink: b for b in backlog(workspace.engine, clock[0] + 5)}
    assert (status["soc"].pending, status["soc"].failed_attempts) == (4, 1)
    assert status["soc"].oldest_pending_seconds >= 5
    assert "ConnectionRefusedError" in (status["soc"].last_error or "")
    # Not due again before its backoff (10 s for the failed row; the three untried rows are due now).
    failed_at = [r for r in _rows(workspace) if r["sink"] == "soc" and r["failures"] == 1]
    assert len(failed_at) == 1
    assert failed_at[0]["next_attempt_at"] == clock[0] + 10
    report = deliver_due(workspace.engine, [down], clock[0] + 1, alerts=source, policy=policy,
                         clock=lambda: clock[0] + 1, rand=lambda: 1.0)  # fmt: skip
    assert report.waiting == 2  # one more attempt (failed), the rest left for later
    assert sum(r["failures"] for r in _rows(workspace) if r["sink"] == "soc") == 2


def test_two_deliverers_at_once_send_each_row_once(workspace: Workspace, tmp_path: Path) -> None:
    """Rows are claimed with a conditional update: concurrent passes never send the same row twice."""
    sink = JsonLinesSink(name="archive", path=tmp_path / "a.jsonl")
    alerts = [raise_alert(workspace, [sink], principal=f"tok_{n}") for n in range(12)]
    source = LedgerAlerts(workspace.log, workspace.engine)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            deliver_due(workspace.engine, [sink], 1e10, alerts=source)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    keys = [str(line["idempotency_key"]) for line in _lines(sink.path)]
    assert sorted(keys) == sorted(f"{a.alert_id}/archive" for a in alerts)


@pytest.mark.parametrize("attempts", [1, 3])
def test_a_removed_sink_leaves_its_rows_waiting(workspace: Workspace, tmp_path: Path, attempts: int) -> None:
    """A sink taken out of policy.yaml: its rows stay pending (counted), nothing is dropped."""
    gone = JsonLinesSink(name="gone", path=tmp_path / "g.jsonl")
    raise_alert(workspace, [gone])
    for _ in range(attempts):
        report = deliver_due(workspace.engine, [], 1e10, alerts=LedgerAlerts(workspace.log, workspace.engine))
        assert report.waiting == 1
    assert [(b.sink, b.pending) for b in backlog(workspace.engine, 1e10)] == [("gone", 1)]


def test_the_migration_builds_the_table_the_code_queries(workspace: Workspace) -> None:
    """0020_outbox creates alert_outbox with schema.py's columns and its due index, on both databases."""
    from sqlalchemy import inspect

    found = inspect(workspace.engine)
    assert [c["name"] for c in found.get_columns("alert_outbox")] == [c.name for c in alert_outbox.columns]
    assert found.get_pk_constraint("alert_outbox")["constrained_columns"] == ["idempotency_key"]
    (index,) = found.get_indexes("alert_outbox")
    assert index["column_names"] == ["delivered_at", "refused_at", "next_attempt_at"]


def test_a_sink_that_breaks_does_not_stop_the_others(workspace: Workspace, tmp_path: Path) -> None:
    """A bug in one sink (its formatter raises) is a failed attempt for that sink only: others still get the alert."""

    def broken(alert: object) -> dict[str, object]:
        raise ZeroDivisionError

    bad = JsonLinesSink(name="bad", path=tmp_path / "bad.jsonl", format=broken)
    good = JsonLinesSink(name="good", path=tmp_path / "good.jsonl")
    raise_alert(workspace, [bad, good])
    report = deliver_due(workspace.engine, [bad, good], time.time() + 1,
                         alerts=LedgerAlerts(workspace.log, workspace.engine))  # fmt: skip
    assert report.failed == {"bad": "bad: ZeroDivisionError in the sink"}
    assert len(_lines(good.path)) == 1
    assert [(b.sink, b.pending, b.last_error) for b in backlog(workspace.engine, time.time())] == [
        ("bad", 1, "bad: ZeroDivisionError in the sink")
    ]
