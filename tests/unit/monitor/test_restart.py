"""Crash and restart: no entry skipped, no alert raised twice, windows carried across the restart."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Connection, select

from mlwarden.cli.watch import WatcherProcess
from mlwarden.monitor.alert import ALERT_RAISED, Alert
from mlwarden.monitor.alerts_store import list_alerts
from mlwarden.monitor.watcher import wait_for
from mlwarden.store.schema import watch_cursors
from mlwarden.workspace import Workspace
from tests.support.processes import Child
from tests.unit.monitor.conftest import MakeWatcher, drain

PRINCIPALS = 30
DENIALS = 20  # the default threshold of access.denied_burst


def probing(ws: Workspace, *, filler: int = 0) -> None:
    """PRINCIPALS probers, DENIALS denials each, interleaved with allowed requests."""
    for round_ in range(DENIALS):
        for p in range(PRINCIPALS):
            ws.log.append(kind="access.denied", subject=f"model:m{round_}", principal=f"token:p{p}", body={})
        for i in range(filler):
            ws.log.append(kind="access.allowed", subject="model:m", principal=f"token:u{i}", body={})


def raised_entries(ws: Workspace) -> list[str]:
    return [e.parse().body["alert_id"] for e in ws.log.find(ALERT_RAISED, "alert:", limit=100_000)]


def cursor(ws: Workspace) -> int:
    with ws.engine.connect() as conn:
        return int(conn.execute(select(watch_cursors.c.next_index)).scalar() or 0)


def test_a_window_straddling_a_restart_still_fires(ws: Workspace, make_watcher: MakeWatcher) -> None:
    for i in range(10):
        ws.log.append(kind="access.denied", subject=f"model:m{i}", principal="token:probe", body={})
    drain(make_watcher())  # the first watcher sees 10 denials and stops
    for i in range(10):
        ws.log.append(kind="access.denied", subject=f"model:n{i}", principal="token:probe", body={})
    drain(make_watcher())  # a new one must count the 10 before its cursor too
    found = [a.alert for a in list_alerts(ws)]
    assert [(a.rule, a.principal) for a in found] == [("access.denied_burst", "token:probe")]
    assert found[0].first_index == 0


def test_restart_every_few_entries_raises_each_alert_once(ws: Workspace, make_watcher: MakeWatcher) -> None:
    probing(ws)
    size = ws.log.size()
    for _ in range(size):  # a new watcher (fresh memory, replayed windows) for every tick of 37 entries
        if make_watcher(batch=37).tick() == 0:
            break
    ids = raised_entries(ws)
    assert len(ids) == PRINCIPALS
    assert len(set(ids)) == PRINCIPALS
    assert cursor(ws) >= size


def test_a_failed_commit_moves_nothing_and_the_retry_raises_once(ws: Workspace, make_watcher: MakeWatcher) -> None:
    for i in range(25):
        ws.log.append(kind="access.denied", subject=f"model:m{i}", principal="token:probe", body={})
    watcher = make_watcher()

    def outbox_down(_conn: Connection, _alert: Alert) -> None:
        raise RuntimeError("outbox insert failed")

    watcher.on_alert = outbox_down
    with pytest.raises(RuntimeError):
        watcher.tick()
    assert cursor(ws) == 0
    assert raised_entries(ws) == []
    watcher.on_alert = lambda _conn, _alert: None
    drain(watcher)
    assert len(raised_entries(ws)) == 1


@pytest.mark.slow
def test_killed_watch_process_resumes_without_skipping_or_repeating(ws: Workspace, tmp_path: Path) -> None:
    probing(ws, filler=10)
    size = ws.log.size()
    env = {**os.environ, "MLWARDEN_HOME": str(ws.options.paths.home)}
    env.pop("MLWARDEN_DATABASE_URL", None)
    if not ws.options.is_sqlite:
        env["MLWARDEN_DATABASE_URL"] = ws.options.database_url
    child = Child([sys.executable, "-m", "mlwarden.cli", "watch", "--batch", "20"],
                  stderr_path=tmp_path / "watch.err", env=env)  # fmt: skip
    deadline = time.monotonic() + 120
    try:
        while (at_kill := cursor(ws)) == 0 and time.monotonic() < deadline and child.proc.poll() is None:
            time.sleep(0.005)
    finally:
        child.kill()
    assert 0 < at_kill < size, f"the kill did not land mid-stream (cursor {at_kill} of {size}): {child.stderr()}"
    again = Child([sys.executable, "-m", "mlwarden.cli", "watch", "--once"],
                  stderr_path=tmp_path / "again.err", env=env)  # fmt: skip
    try:
        assert again.proc.wait(timeout=120) == 0, again.stderr()
    finally:
        again.kill()
    ids = raised_entries(ws)
    assert Counter(ids).most_common(1)[0][1] == 1
    assert len(ids) == PRINCIPALS
    assert cursor(ws) >= size


@pytest.mark.slow
def test_serves_watcher_process_is_started_again_after_it_dies(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIGKILLed watcher child comes back (a new process, after a backoff) and still raises each alert once."""
    monkeypatch.setenv("MLWARDEN_HOME", str(ws.options.paths.home))
    if ws.options.is_sqlite:
        monkeypatch.delenv("MLWARDEN_DATABASE_URL", raising=False)
    else:
        monkeypatch.setenv("MLWARDEN_DATABASE_URL", ws.options.database_url)
    monkeypatch.setattr(WatcherProcess, "RESTART_FIRST", 0.05)
    probing(ws, filler=10)
    size = ws.log.size()
    supervised = WatcherProcess().start(ws.options.paths.policy)
    try:
        first = supervised.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        assert wait_for(lambda: supervised.pid not in (None, first), timeout=60), "no new watcher process"
        assert supervised.restarts == 1
        assert wait_for(lambda: cursor(ws) >= size, timeout=120), f"the new watcher did not catch up: {cursor(ws)}"
    finally:
        supervised.stop()
    ids = raised_entries(ws)
    assert Counter(ids).most_common(1)[0][1] == 1
    assert len(ids) == PRINCIPALS
