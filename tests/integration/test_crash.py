"""SIGKILL at random moments loses no entry whose receipt was returned, and the log still verifies."""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import pytest

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.workspace import init_workspace, open_workspace
from tests.support.processes import Child

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
sys.stdout.write("ready\n")  # before any writer runs: nothing else can come first on stdout
sys.stdout.flush()
for th in threads:
    th.start()
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
        child = Child(
            [sys.executable, "-c", CHILD, str(options.paths.home), str(run)],
            stderr_path=tmp_path / f"child-{run}.err",
            env=env,
        )
        try:
            first = child.readline(timeout=120)
            assert first == b"ready\n", (first, child.stderr())
            first_receipt = child.readline(timeout=120)  # appends have begun (a loaded machine starts slowly)
            assert first_receipt.endswith(b"}\n"), (first_receipt, child.stderr())
            time.sleep(rng.uniform(0.05, 0.6))
        finally:
            rest = child.kill(timeout=60)
        out = first_receipt + rest
        assert child.proc.returncode == -signal.SIGKILL
        for line in out.decode().splitlines():
            if not line.endswith("}"):
                continue  # a line cut by the kill was never a returned receipt
            parsed = json.loads(line)
            assert parsed["index"] not in receipts, "an index was handed out twice"
            receipts[parsed["index"]] = parsed["leaf_hash"]
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
