"""The JSON lines file sink: one line per alert, rotated by size, keeping N files, private."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from mlwarden.monitor.alert import Alert, Severity
from mlwarden.monitor.sinks.interface import SinkUnavailable
from mlwarden.monitor.sinks.jsonl_file import JsonLinesSink


def _alert(n: int) -> Alert:
    return Alert(f"alrt_{n:04d}", "access.denied_burst", Severity.HIGH, "x" * 200, n, n, "2026-01-01T00:00:00Z")


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["alert"]["alert_id"] for line in path.read_text().splitlines()]


def test_rotates_by_size_and_keeps_the_newest(tmp_path: Path) -> None:
    """Past max_bytes the file moves to .1 (then .2 ...); beyond keep the oldest goes; no line is split."""
    sink = JsonLinesSink(name="archive", path=tmp_path / "alerts.jsonl", max_bytes=1024, keep=2)
    for n in range(30):
        sink.deliver(_alert(n), f"alrt_{n:04d}/archive")
    files = [sink.path, sink.rotated(1), sink.rotated(2)]
    assert all(f.stat().st_size <= 1024 for f in files)
    assert not sink.rotated(3).exists()
    kept = _ids(files[2]) + _ids(files[1]) + _ids(files[0])
    assert kept == [f"alrt_{n:04d}" for n in range(30 - len(kept), 30)]  # the newest, in order, contiguous
    assert 6 <= len(kept) < 30
    assert stat.S_IMODE(sink.path.stat().st_mode) == 0o600


def test_each_line_carries_its_idempotency_key(tmp_path: Path) -> None:
    """A reader can drop a redelivered alert by its key."""
    sink = JsonLinesSink(name="archive", path=tmp_path / "alerts.jsonl")
    sink.deliver(_alert(1), "alrt_0001/archive")
    sink.deliver(_alert(1), "alrt_0001/archive")
    lines = [json.loads(line) for line in sink.path.read_text().splitlines()]
    assert [line["idempotency_key"] for line in lines] == ["alrt_0001/archive"] * 2
    assert lines[0]["alert"] == _alert(1).to_dict()


def test_an_unwritable_file_is_a_failed_attempt(tmp_path: Path) -> None:
    """A path that cannot be written (a folder in the way) raises SinkUnavailable: the outbox retries."""
    (tmp_path / "alerts.jsonl").mkdir()
    sink = JsonLinesSink(name="archive", path=tmp_path / "alerts.jsonl")
    with pytest.raises(SinkUnavailable, match="cannot write"):
        sink.deliver(_alert(1), "k")
