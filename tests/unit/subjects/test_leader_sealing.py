"""Predictions rendered and sealed by the group commit: every row sealed and opening; a caller's bad values refuse it
alone, a failure of the batch's keys fails the batch only."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from mlwarden.errors import InvalidInput
from mlwarden.ledger.entry import Entry, PendingEntry, PreparedEntry
from mlwarden.privacy import Opened, Scope, open_many, utc_day
from mlwarden.privacy.errors import KeyUnwrapFailed
from mlwarden.runtime.decision_ids import decision_ids
from mlwarden.runtime.predict import prediction_record
from mlwarden.store.schema import privacy_keys, privacy_rows
from mlwarden.subjects.audit import audit_payloads
from mlwarden.subjects.decisions import claims
from mlwarden.subjects.leader_sealing import pending_prediction
from mlwarden.subjects.sealing import privacy_ring, seal_rows
from mlwarden.workspace import Workspace

MODEL = {"name": "credit", "version": 3, "sha256": "ab" * 32}
DEADLINE_S = 30.0


def _opened(ws: Workspace, index: int) -> tuple[Entry, list[object]]:
    entry = Entry.parse(ws.log.entry(index).text)
    with ws.engine.connect() as conn:
        return entry, list(open_many(conn, privacy_ring(ws), claims(entry.body, entry.index)))


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.001)


def _stored_rows(ws: Workspace) -> int:
    with ws.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(privacy_rows)).scalar_one())


def test_concurrent_callers_get_every_row_sealed_opening_to_its_own_values(workspace: Workspace) -> None:
    """16 threads, rows with and without subjects: each entry's rows open to the caller's values, commitments hold."""
    per_thread = 12

    def caller(t: int) -> list[tuple[int, list[Any], list[Any]]]:
        recorded = []
        for i in range(per_thread):
            rows = 1 + (t + i) % 3
            ids = decision_ids(rows)
            inputs = [{"thread": t, "i": i, "row": r, "x": 0.5 * r} for r in range(rows)]
            outputs = [{"label": (t + i + r) % 2} for r in range(rows)]
            subjects = [f"customer-{(t + r) % 5}" for r in range(rows)] if i % 2 else None
            entry = pending_prediction(workspace, MODEL, ids, inputs, outputs, subjects, principal=f"token:t{t}")
            recorded.append((workspace.log.append_many([entry])[0].index, inputs, outputs))
        return recorded

    with ThreadPoolExecutor(16) as pool:
        results = [r for rs in pool.map(caller, range(16)) for r in rs]
    assert len({index for index, _, _ in results}) == 16 * per_thread
    for index, inputs, outputs in results:
        entry, opened = _opened(workspace, index)
        assert entry.body["v"] == 2
        assert "inputs" not in entry.body
        assert all(isinstance(o, Opened) for o in opened)  # each value matched its commitment when opened
        assert [o.value for o in opened if isinstance(o, Opened)] == inputs + outputs
    assert workspace.log.verify().ok
    report = audit_payloads(workspace)
    assert report.ok
    assert report.verified == 2 * sum(len(inputs) for _, inputs, _ in results)


def test_the_leader_seals_the_same_entry_a_caller_would(workspace: Workspace) -> None:
    """Body shape and the documented layout are those of seal_rows + prediction_record: both open and verify."""
    ids_a, ids_b = decision_ids(2), decision_ids(2)
    inputs, outputs = [{"age": 41}, {"age": 7}], [{"label": 1}, {"label": 0}]
    old = prediction_record(MODEL, ids_a, seal_rows(workspace, ids_a, inputs, outputs), principal="p", access={"a": 1})
    new = pending_prediction(workspace, MODEL, ids_b, inputs, outputs, principal="p", access={"a": 1})
    first, second = workspace.log.append_many([old, new])
    (a, opened_a), (b, opened_b) = _opened(workspace, first.index), _opened(workspace, second.index)
    assert (
        sorted(a.body)
        == sorted(b.body)
        == sorted(
            ["access", "decision_ids", "inputs_commitments", "model", "outputs_commitments", "sha256", "v", "version"]
        )
    )
    assert (b.body["decision_ids"], b.kind, b.subject, b.principal) == (ids_b, a.kind, a.subject, a.principal)
    assert [o.value for o in opened_a if isinstance(o, Opened)] == [o.value for o in opened_b if isinstance(o, Opened)]
    assert len(opened_b) == 4
    assert workspace.log.find_ref(ids_b[1]) == second.index


class _Gate:
    """A finisher that holds its batch until released: keeps the group commit busy while other callers queue."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def finish(self, items: Sequence[str]) -> list[PreparedEntry | Exception]:
        self.entered.set()
        if not self.release.wait(DEADLINE_S):
            raise TimeoutError("the gate was never released")
        return [PreparedEntry.build(kind="test.gate", subject=item, principal="p", body={}) for item in items]


def test_a_seal_failing_in_the_leader_fails_every_caller_of_its_batch_and_writes_none_of_it(
    workspace: Workspace,
) -> None:
    """A subject whose key of the day does not unwrap: the three callers batched with it all get the error."""
    ring = privacy_ring(workspace)
    tag = ring.scope_tag(Scope.subject("tampered"))
    with workspace.engine.begin() as conn:  # a key row altered in the database: it no longer unwraps
        conn.execute(insert(privacy_keys), [
            {"key_id": f"bad-{field}", "scope_tag": tag, "field": field, "day": utc_day(datetime.now(UTC)),
             "kek_id": ring.kek.kek_id, "wrapped": b"\x00" * 60, "created": "2026-01-01T00:00:00+00:00"}
            for field in ("inputs", "outputs")
        ])  # fmt: skip
    gate = _Gate()
    size = workspace.log.size()
    with ThreadPoolExecutor(4) as pool:
        held = pool.submit(workspace.log.append_many, [PendingEntry(gate, "held")])
        assert gate.entered.wait(DEADLINE_S)  # the leader is busy with its batch: the next callers queue
        callers = [
            pool.submit(workspace.log.append_many, [
                pending_prediction(workspace, MODEL, decision_ids(1), [{"n": n}], [{"label": 0}], subjects,
                                   principal="p")
            ])
            for n, subjects in enumerate((None, ["tampered"], ["customer-1"]))
        ]  # fmt: skip
        _wait_for(lambda: workspace.log.queued_appends == 3, "three queued callers")
        gate.release.set()
        assert held.result(DEADLINE_S)[0].index == size
        for caller in callers:
            with pytest.raises(KeyUnwrapFailed):
                caller.result(DEADLINE_S)
    assert workspace.log.size() == size + 1  # the held entry only
    assert _stored_rows(workspace) == 0
    fine = pending_prediction(workspace, MODEL, decision_ids(1), [{"n": 9}], [{"label": 1}], principal="p")
    assert workspace.log.append_many([fine])[0].index == size + 1  # the next batch is not affected
    assert workspace.log.verify().ok


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"outputs": [{"score": float("nan")}]}, "NaN"),
        ({"inputs": [{"when": datetime(2026, 1, 1, tzinfo=UTC)}]}, "datetime is not a JSON value"),
        ({"subjects": [" "]}, r"subjects\[0\]"),
        ({"subjects": ["a", "b"]}, "one subject per decision"),
        ({"decision_ids": ["x" * 65]}, "decision id"),
        ({"principal": "p" * 513}, "principal"),
        ({"extra": {"v": 1}}, "sets v itself"),
        ({"extra": {"note": "\x00mlwarden:commitments\x00"}}, "placeholder"),
        ({"inputs": [{"blob": "x" * (1 << 20)}]}, None),  # a value too large for an entry is a payload: it seals
    ],
)
def test_what_is_wrong_with_one_callers_data_is_refused_and_nothing_written(
    workspace: Workspace, change: dict[str, Any], message: str | None
) -> None:
    """Bad shapes are refused when the entry is made; bad values when the batch renders it: either way an input
    error for this caller, and nothing of it in the ledger."""
    args: dict[str, Any] = {"decision_ids": ["d-1"], "inputs": [{"a": 1}], "outputs": [{"label": 1}],
                            "subjects": None, "principal": "p", "extra": {}} | change  # fmt: skip
    extra = args.pop("extra")
    ids, inputs, outputs, subjects = (args.pop(k) for k in ("decision_ids", "inputs", "outputs", "subjects"))

    def record() -> int:
        entry = pending_prediction(workspace, MODEL, ids, inputs, outputs, subjects, **args, **extra)
        return workspace.log.append_many([entry])[0].index

    if message is None:
        index = record()
        assert [type(o) for o in _opened(workspace, index)[1]] == [Opened, Opened]
        return
    with pytest.raises(InvalidInput, match=message):
        record()
    assert workspace.log.size() == 0
    assert _stored_rows(workspace) == 0


def test_a_callers_bad_values_refuse_it_alone_in_a_shared_batch(workspace: Workspace) -> None:
    """Three callers batched together, the middle one's output NaN: it alone gets the error; the two others are
    recorded, their rows sealed and opening, and the log verifies."""
    gate = _Gate()
    size = workspace.log.size()
    values = [[{"score": 0.25}], [{"score": float("nan")}], [{"score": 0.75}]]
    with ThreadPoolExecutor(4) as pool:
        held = pool.submit(workspace.log.append_many, [PendingEntry(gate, "held")])
        assert gate.entered.wait(DEADLINE_S)  # the leader is busy with its batch: the next callers queue
        callers = [
            pool.submit(workspace.log.append_many, [
                pending_prediction(workspace, MODEL, decision_ids(1), [{"n": n}], outputs, principal="p")
            ])
            for n, outputs in enumerate(values)
        ]  # fmt: skip
        _wait_for(lambda: workspace.log.queued_appends == 3, "three queued callers")
        gate.release.set()
        assert held.result(DEADLINE_S)[0].index == size
        first, third = callers[0].result(DEADLINE_S)[0], callers[2].result(DEADLINE_S)[0]
        with pytest.raises(InvalidInput, match="NaN"):
            callers[1].result(DEADLINE_S)
    assert sorted([first.index, third.index]) == [size + 1, size + 2]  # in one batch, after the held entry
    for receipt, n, outputs in ((first, 0, values[0]), (third, 2, values[2])):
        _entry, opened = _opened(workspace, receipt.index)
        assert [o.value for o in opened if isinstance(o, Opened)] == [{"n": n}, *outputs]
    assert workspace.log.size() == size + 3
    assert _stored_rows(workspace) == 2
    assert workspace.log.verify().ok


def test_a_body_past_the_ledger_limit_is_refused_before_sealing(workspace: Workspace) -> None:
    """The body's final size is known before the commitments exist: too many rows are refused, nothing sealed."""
    rows = 8000  # 8,000 decision ids and 16,000 commitments: past 1 MiB
    entry = pending_prediction(workspace, MODEL, decision_ids(rows), [{}] * rows, [{}] * rows, principal="p")
    with pytest.raises(InvalidInput, match="limit is 1048576"):
        workspace.log.append_many([entry])
    assert workspace.log.size() == 0
    assert _stored_rows(workspace) == 0


def test_keys_of_another_day_seal_rows_given_that_day(workspace: Workspace) -> None:
    """``now`` in the past: the rows are sealed under that day's keys, created in the leader's own transaction."""
    earlier = datetime.now(UTC) - timedelta(days=3)
    entry = pending_prediction(workspace, MODEL, ["d-old"], [{"a": 1}], [{"b": 2}], ["customer-9"], principal="p",
                               now=earlier)  # fmt: skip
    index = workspace.log.append_many([entry])[0].index
    with workspace.engine.connect() as conn:
        day = conn.execute(select(privacy_rows.c.day).where(privacy_rows.c.decision_id == "d-old")).scalar_one()
    assert day == utc_day(earlier)
    assert [type(o) for o in _opened(workspace, index)[1]] == [Opened, Opened]
