"""The chunk-at-once watcher raises exactly the alerts of the entry-by-entry path, on every rule's attack.

The reference reads every entry in full (``read_entry``), opens samples per chunk
(``RuleSet.prepare``) and hands entries one by one to ``RuleSet.observe``: the watcher as it
was before predictions stayed light. The scripted ledger holds each built-in rule's attack among
normal traffic, predictions whose header cannot be read without a full parse, a custom rule or
two, and a clock that steps back; both paths must agree on every alert id, range, summary and detail.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import text

import mlwarden.ledger.log as ledger_log
from mlwarden.monitor.alert import ALERT_RAISED, Alert
from mlwarden.monitor.alerts_store import list_alerts
from mlwarden.monitor.references import ReferenceBook
from mlwarden.monitor.rules import RuleSet, build_rules
from mlwarden.monitor.rules_file import parse_rules
from mlwarden.monitor.sampling import workspace_opener
from mlwarden.monitor.stream import read_entry
from mlwarden.monitor.watcher import Watcher, read_rows
from mlwarden.runtime.predict import predict
from mlwarden.samples import SampleModel, breast_cancer_model
from mlwarden.workspace import Workspace
from tests.support.served import bc_in_production
from tests.unit.monitor.conftest import drain


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.slow])])
def backend(request: pytest.FixtureRequest) -> str:
    """SQLite in the default pass; PostgreSQL (15-17 s a test here) in the slow pass."""
    return str(request.param)


CUSTOM = """
alerts:
  sampling: {budget: 30, window: 300, rows_per_entry: 16}
  custom:
    - {id: custom.busy_caller, kind: prediction, group_by: principal, threshold: 40, window: 120}
    - {id: custom.requests, kind: "request.*", group_by: principal, threshold: 15, window: 60}
"""
EVERY_RULE = {
    "inference.extraction", "inference.input_drift", "inference.output_shift", "feedback.spike",
    "access.denied_burst", "auth.failure_burst", "governance.event", "ledger.integrity",
}  # fmt: skip


class Clock:
    """The ledger's clock, moved by the script (seconds after a fixed start)."""

    def __init__(self) -> None:
        self.start = datetime(2026, 1, 1, tzinfo=UTC)
        self.now = 0.0

    def __call__(self) -> str:
        return (self.start + timedelta(seconds=self.now)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleModel:
    return breast_cancer_model(tmp_path_factory.mktemp("equivalence") / "art", trees=5)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moved = Clock()
    monkeypatch.setattr(ledger_log, "utc_now", moved)
    return moved


def script(ws: Workspace, sample: SampleModel, clock: Clock) -> int:
    """Every rule's attack among normal traffic, phase by phase (each longer than the longest window)."""
    bc_in_production(ws, sample)
    table = np.array([[float(v) for v in line.split(",")] for line in sample.train_csv.read_text().splitlines()[1:]])
    x, y = table[:, :-1], table[:, -1]
    rng = np.random.default_rng(13)

    def send(who: str, rows: np.ndarray, per_call: int = 3, step: float = 0.5) -> None:
        for at in range(0, len(rows), per_call):
            clock.now += step
            predict(ws, "bc", 1, rows[at : at + per_call].tolist(), who)

    def honest(n: int) -> np.ndarray:
        return x[rng.integers(0, len(x), n)]

    # phase 1: an extraction sweep among honest callers, one caller whose name needs escapes, denials, 401s
    send("honest", honest(90))
    send('svc "quoted"', honest(60))
    sweep = rng.uniform(x.min(axis=0), x.max(axis=0), size=(1280, x.shape[1]))
    send("thief", sweep, per_call=4, step=2.0)  # past the sampling budget: most of its volume stays light
    for i in range(25):
        clock.now += 0.5
        ws.log.append(kind="access.denied", subject=f"model:m{i}", principal="token:probe", body={"allow": False})
        ws.log.append(kind="request.rejected", subject="model:bc", principal="token:stuffer", body={"status": 401})
    clock.now -= 200  # the clock steps back (more than the writer follows): times decrease along the log
    send("honest", honest(120))
    send("thief", rng.uniform(x.min(axis=0), x.max(axis=0), size=(300, x.shape[1])), per_call=4, step=0.3)
    ws.log.append(kind="token.created", subject="token:t1", principal="alice", body={"scopes": ["admin"]})
    ws.log.append(kind="ledger.verify_failed", subject="ledger", principal="system", body={"index": 3})
    # phase 2: a shifted population spread over callers (drift), then feedback flags pile up on the model
    clock.now += 1500
    shifted = honest(400) * 1.6
    for i in range(8):
        send(f"clinic{i}", shifted[i * 50 : (i + 1) * 50], per_call=5)
    send("steady", honest(300), per_call=2, step=1.0)  # the flags' rate is over decisions, most of them light
    for i in range(60):
        clock.now += 1
        ws.log.append(kind="feedback", subject="model:bc:1", principal=f"user{i % 3}", body={"kind": "wrong"})
    # phase 3: only one class comes in (output shift)
    clock.now += 1500
    negatives = x[y == 0]
    send("screening", negatives[rng.integers(0, len(negatives), 500)], per_call=5)
    send("honest", honest(60))
    return ws.log.size()


def watcher_alerts(ws: Workspace, rules: Callable[[], RuleSet], batch: int) -> list[dict[str, object]]:
    """What the watcher records (batch path), as comparable dicts."""
    drain(Watcher(ws, rules, batch=batch))
    return sorted((_comparable(a.alert) for a in list_alerts(ws)), key=lambda a: str(a["alert_id"]))


def per_entry_alerts(ws: Workspace, rules: RuleSet, stop: int, batch: int) -> list[dict[str, object]]:
    """The entry-by-entry path: every entry parsed in full, samples opened per chunk, one observe call per entry."""
    found: dict[str, Alert] = {}
    for start in range(0, stop, batch):
        with ws.engine.connect() as conn:
            rows = read_rows(conn, start, min(stop, start + batch))
        entries = [e for e in (read_entry(i, text) for i, _kind, text in rows) if rules.watches(e.kind)]
        rules.prepare(entries)
        for entry in entries:
            if entry.kind == ALERT_RAISED:
                rules.raised(Alert.from_dict(entry.body))
                continue
            for alert in rules.observe(entry):
                found.setdefault(alert.alert_id, alert)
    return sorted((_comparable(a) for a in found.values()), key=lambda a: str(a["alert_id"]))


def _comparable(alert: Alert) -> dict[str, object]:
    out = alert.to_dict()
    out.pop("entry_index")
    return json.loads(json.dumps(out, sort_keys=True))  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("rules_yaml", "batch"),
    [("", 5000), pytest.param("", 37, marks=pytest.mark.slow), pytest.param(CUSTOM, 500, marks=pytest.mark.slow)],
)  # 10-18 s each: the default pass keeps one chunk size, the slow pass the other two
def test_batch_and_entry_by_entry_raise_the_same_alerts(
    ws: Workspace, sample: SampleModel, clock: Clock, rules_yaml: str, batch: int
) -> None:
    """Same ids, evidence ranges, summaries and details, whatever the chunk size or the custom rules."""
    scripted = script(ws, sample, clock)

    def rules() -> RuleSet:
        return build_rules(parse_rules(rules_yaml), ReferenceBook.of_workspace(ws), workspace_opener(ws))

    expected = per_entry_alerts(ws, rules(), scripted, batch)
    got = watcher_alerts(ws, rules, batch)
    assert {str(a["rule"]) for a in expected} >= EVERY_RULE, "the script no longer triggers every rule"
    if rules_yaml:
        assert {"custom.busy_caller", "custom.requests"} <= {str(a["rule"]) for a in expected}
    assert got == expected


def test_relabelled_lookup_columns_let_no_entry_escape_a_rule(ws: Workspace, sample: SampleModel, clock: Clock) -> None:
    """An intruder rewrites every lookup column of the attack's entries: the text still decides, alerts stay."""
    scripted = script(ws, sample, clock)
    with ws.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE ledger_entries SET kind = 'access.allowed', principal = 'token:nobody', status = 200,"
                " decision = NULL, entry_time = '2000-01-01T00:00:00.000000Z'"
                " WHERE kind IN ('prediction', 'access.denied', 'request.rejected', 'feedback', 'token.created')"
            )
        )

    def rules() -> RuleSet:
        return build_rules(parse_rules(""), ReferenceBook.of_workspace(ws), workspace_opener(ws))

    expected = per_entry_alerts(ws, rules(), scripted, 5000)
    got = watcher_alerts(ws, rules, 5000)
    assert {str(a["rule"]) for a in got} >= EVERY_RULE
    assert got == expected
