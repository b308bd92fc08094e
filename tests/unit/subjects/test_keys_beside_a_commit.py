"""The next batch's keys of the day are created while this process's previous batch still commits (the group
commit's overlap): under the ledger's write lock, so the transaction waits for that commit instead of failing on
SQLite's lock timeout. (From a review; failed before the prepare stage took the lock.)"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from mlwarden.config import WorkspaceOptions
from mlwarden.privacy import utc_day
from mlwarden.runtime.decision_ids import decision_ids
from mlwarden.subjects.leader_sealing import pending_prediction
from mlwarden.subjects.sealing import day_keys, privacy_ring
from mlwarden.workspace import Workspace, init_workspace, open_workspace

MODEL = {"name": "credit", "version": 3, "sha256": "ab" * 32}
WAIT_S = 10.0
LOCK_TIMEOUT_S = 0.3
COMMIT_S = 1.0  # a commit waiting on a slow disk, longer than the configured lock timeout


@pytest.fixture
def short_lock_ws(sqlite_options: WorkspaceOptions) -> Iterator[Workspace]:
    options = dataclasses.replace(sqlite_options, lock_timeout_seconds=LOCK_TIMEOUT_S)
    init_workspace(options)
    ws = open_workspace(options)
    try:
        yield ws
    finally:
        ws.close()


class _SlowCommit:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def commit(self) -> None:
        time.sleep(COMMIT_S)  # BEGIN IMMEDIATE ... inserts done: the write lock is held meanwhile
        self._conn.commit()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def test_keys_created_for_the_next_batch_wait_for_the_previous_commit_past_the_lock_timeout(
    short_lock_ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = short_lock_ws
    log = ws.log
    slow = threading.current_thread
    writer_name = "plain-writer"
    real_stage, real_conn = log._stage, log._writer_connection

    def stage(*args: Any, **kwargs: Any) -> Any:
        if slow().name == writer_name:  # the prediction queues behind this batch before it commits
            deadline = time.monotonic() + WAIT_S
            while log.queued_appends < 1 and time.monotonic() < deadline:
                time.sleep(0.001)
        return real_stage(*args, **kwargs)

    def writer_connection() -> Any:
        conn = real_conn()
        return _SlowCommit(conn) if slow().name == writer_name else conn

    monkeypatch.setattr(log, "_stage", stage)
    monkeypatch.setattr(log, "_writer_connection", writer_connection)
    done: list[object] = []
    plain = threading.Thread(
        target=lambda: done.append(log.append(kind="test.plain", subject="s", body={}, principal="p")),
        name=writer_name,
        daemon=True,
    )
    plain.start()
    deadline = time.monotonic() + WAIT_S
    while not log._committer._busy and time.monotonic() < deadline:
        time.sleep(0.001)
    entry = pending_prediction(  # a subject seen for the first time today: its keys are created in a transaction
        ws, MODEL, decision_ids(1), [{"age": 41}], [{"label": 1}], ["customer-new"], principal="p"
    )
    receipts = log.append_many([entry])  # was: StoreError: data keys of the day ... database is locked
    plain.join(WAIT_S)
    assert len(done) == 1
    assert [r.index for r in receipts] == [1]  # after the plain entry, whose commit it waited for
    assert log.verify().ok


def test_stored_keys_past_their_minute_in_the_cache_are_read_without_the_write_lock(workspace: Workspace) -> None:
    """A subject's keys made earlier, dropped from the cache: found by a read while the ledger's write lock is held
    (a commit in progress), not by waiting for it; a new subject's keys wait for the lock."""
    ring = privacy_ring(workspace)
    day = utc_day(datetime.now(UTC))
    first = day_keys(workspace, ring, [(["customer-1"], 1, day)])
    ring.forget()  # as a minute later
    lock = workspace.log.write_lock
    again: list[list[list[Any]]] = []
    with lock:  # held by "the previous batch's commit"
        reader = threading.Thread(
            target=lambda: again.append(day_keys(workspace, ring, [(["customer-1"], 1, day)], lock=lock)), daemon=True
        )
        reader.start()
        reader.join(WAIT_S)
        assert not reader.is_alive()  # it did not wait for the lock
    assert [(a.key_id, b.key_id) for a, b in again[0][0]] == [(a.key_id, b.key_id) for a, b in first[0]]
    made: list[object] = []
    with lock:
        creator = threading.Thread(
            target=lambda: made.append(day_keys(workspace, ring, [(["customer-2"], 1, day)], lock=lock)), daemon=True
        )
        creator.start()
        creator.join(0.2)
        assert creator.is_alive()  # a key to create: it waits for the lock
    creator.join(WAIT_S)
    assert len(made) == 1
