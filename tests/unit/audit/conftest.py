"""A ledger of varied entries at known times, on SQLite and PostgreSQL, for the audit tests."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

import mlwarden.ledger.log as ledger_log
from mlwarden.ledger.entry import PreparedEntry
from mlwarden.workspace import Workspace

START = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
DECISION = "d-0007"


@dataclass
class Recorded:
    """The workspace and what was recorded in it (index → time)."""

    ws: Workspace
    times: dict[int, datetime]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """Entry times come from this list's last element (a clock the test sets, not the wall clock)."""
    now = [START]
    monkeypatch.setattr(ledger_log, "utc_now", lambda: now[-1].strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    return now


def _entries(n: int) -> Iterator[tuple[PreparedEntry, timedelta]]:
    principals = itertools.cycle(["token:alice", "token:bob", "spiffe://ex.org/sa/batch", "token:mallory"])
    for i in range(n):
        principal = next(principals)
        step = timedelta(minutes=10 * i)
        match i % 8:
            case 0 | 1:
                ids = [f"d-{i:04d}", f"d-{i:04d}b"] if i % 8 == 0 else [f"d-{i:04d}"]
                model = ("bc", "bcx", "fraud")[i % 3]
                yield (PreparedEntry.build(kind="prediction", subject=f"model:{model}:{1 + i % 2}", principal=principal,
                                           body={"model": model, "decision_ids": ids, "inputs": ["c0ffee"]},
                                           refs=tuple(ids)), step)  # fmt: skip
            case 2:
                yield (PreparedEntry.build(kind="access.denied", subject="model:bc", principal=principal,
                                           body={"decision": "deny", "reason": "missing scope"}), step)  # fmt: skip
            case 3:
                yield (PreparedEntry.build(kind="request.rejected", subject="/v1/models/bc/predict",
                                           principal=principal, body={"reason": "bad row",
                                           "status": (422, 429, 413)[i % 3]}), step)  # fmt: skip
            case 4:
                yield (PreparedEntry.build(kind="feedback", subject="model:bc:1", principal=principal,
                                           body={"feedback_id": f"f-{i}", "decision_id": DECISION if i % 3 else
                                                 f"d-{i:04d}", "comment": "looks wrong"},
                                           refs=(f"f-{i}",)), step)  # fmt: skip
            case 5:
                yield (PreparedEntry.build(kind="request.rejected_summary", subject="requests:unauthenticated",
                                           principal="system:gateway", body={"count": 3, "statuses":
                                           {"401": 2, "429": 1} if i % 2 else {"413": 3}}), step)  # fmt: skip
            case 6:
                yield (PreparedEntry.build(kind="model.promoted", subject="model:a_c:1", principal=principal,
                                           body={"stage": "production"}), step)  # fmt: skip
            case _:
                yield (PreparedEntry.build(kind="external.deploy", subject="model:abc:2", principal=principal,
                                           body={"n": i}), step)  # fmt: skip


def record_varied(ws: Workspace, clock: list[datetime], n: int = 96) -> Recorded:
    """``n`` entries of eight kinds, four principals, ten minutes apart from :data:`START`."""
    base = ws.log.size()
    times: dict[int, datetime] = {}
    for offset, (entry, step) in enumerate(_entries(n)):
        clock.append(START + step)
        ws.log.append_many([entry])
        times[base + offset] = START + step
    return Recorded(ws, times)


@pytest.fixture
def recorded(workspace: Workspace, clock: list[datetime]) -> Recorded:
    """The varied ledger, on each backend."""
    return record_varied(workspace, clock)
