"""SIGKILL at random moments loses no entry whose receipt was returned, and the log still verifies."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.workspace import init_workspace, open_workspace

CHILD = r"""
import json, sys, threading
from pathlib import Path
from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.workspace import open_workspace

ws = open_workspace(WorkspaceOptions.from_settings(Settings(database_url=None), Path(sys.argv[1])))
lock = threading.Lock()
run = sys.argv[2]

def worker(t):
    i = 0
    while True:
        r = ws.log.append(kind="crash.test", subject=f"{run}-{t}", body={"t": t, "i": i}, principal="test")
        with lock:
            sys.stdout.write(json.dumps(r.to_json()) + "\n")
            sys.stdout.flush()
        i += 1

threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(4)]
for th in threads:
    th.start()
sys.stdout.write("ready\n")
sys.stdout.flush()
for th in threads:
    th.join()
"""


@pytest.mark.slow
def test_sigkill_loses_no_acknowledged_entry(tmp_path: Path) -> None:
    """Twelve children are killed mid-append; every printed receipt is stored unchanged and verify passes."""
    options = WorkspaceOptions.from_settings(Settings(database_url=None), tmp_path / "ws")
    init_workspace(options)
    rng = random.Random(20261125)
    receipts: dict[int, str] = {}
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for run in range(12):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(options.paths.home), str(run)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert child.stdout is not None
        first = child.stdout.readline()
        assert first == b"ready\n", (first, child.stderr.read() if child.stderr else b"")
        time.sleep(rng.uniform(0.05, 0.6))
        os.kill(child.pid, signal.SIGKILL)
        out, _ = child.communicate(timeout=30)
        assert child.returncode == -signal.SIGKILL
        for line in out.decode().splitlines():
            if not line.endswith("}"):
                continue  # a line cut by the kill was never a returned receipt
            receipt = json.loads(line)
            assert receipt["index"] not in receipts, "an index was handed out twice"
            receipts[receipt["index"]] = receipt["leaf_hash"]
    assert len(receipts) > 100, "children should have appended for a while before dying"
    ws = open_workspace(options)
    try:
        for index, leaf in receipts.items():
            assert ws.log.entry(index).leaf_hash.hex() == leaf
        report = ws.log.verify()
        assert report.ok, report.finding
        assert report.size >= max(receipts) + 1
    finally:
        ws.close()
