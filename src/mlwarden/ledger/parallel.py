"""Verify a large stored log on every core: aligned chunks scanned by worker processes.

Each worker (``python -m mlwarden.ledger.parallel``) reads chunks ``[c*P, (c+1)*P)`` with
the bare driver and answers each with the chunk's subtree hashes (see
:func:`mlwarden.ledger.verify.scan_chunk`); the parent joins them into the tree. Workers
are plain subprocesses speaking JSON lines on stdin/stdout: nothing is unpickled, the
caller's main module is never re-imported, and the database address travels on a pipe,
never on a command line.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from mlwarden.errors import LedgerUnavailable
from mlwarden.ledger.verify import ChunkScan, Finding, scan_chunk
from mlwarden.store.rows import DriverTarget, stream_target

CHUNK = 1 << 16
MIN_ENTRIES = 1 << 18
"""Below this, one pass in this process beats starting workers."""


def worker_count() -> int:
    """How many processes a parallel verification uses."""
    return max(1, min(os.cpu_count() or 1, 8))


def _scan_to_json(scan: ChunkScan) -> dict[str, Any]:
    f = scan.finding
    return {
        "lo": scan.lo,
        "hi": scan.hi,
        "end": scan.end,
        "frontier": [h.hex() for h in scan.frontier],
        "at": {str(k): [h.hex() for h in v] for k, v in scan.at.items()},
        "finding": None if f is None else [f.index, f.problem, f.message],
    }


def _scan_from_json(obj: dict[str, Any]) -> ChunkScan:
    f = obj["finding"]
    return ChunkScan(
        lo=int(obj["lo"]),
        hi=None if obj["hi"] is None else int(obj["hi"]),
        end=int(obj["end"]),
        frontier=[bytes.fromhex(h) for h in obj["frontier"]],
        at={int(k): [bytes.fromhex(h) for h in v] for k, v in obj["at"].items()},
        finding=None if f is None else Finding(f[0], f[1], f[2]),
    )


class _Worker:
    def __init__(self, target: DriverTarget) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlwarden.ledger.parallel"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        self._send({"dialect": target.dialect, "dsn": target.dsn})

    def _send(self, obj: dict[str, Any]) -> None:
        if self.proc.stdin is None:
            raise LedgerUnavailable("verification worker has no input pipe")
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def scan(self, lo: int, hi: int | None, stops: Sequence[int]) -> ChunkScan:
        self._send({"lo": lo, "hi": hi, "stops": list(stops)})
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            raise LedgerUnavailable("a verification worker stopped before answering (database unreadable?)")
        answer = json.loads(line)
        if "error" in answer:
            raise LedgerUnavailable(f"verification worker failed: {answer['error']}")
        return _scan_from_json(answer)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


def parallel_scans(
    target: DriverTarget, end: int, stops: Sequence[int], *, workers: int, chunk: int = CHUNK
) -> Iterator[ChunkScan]:
    """Scan the rows in chunks of ``chunk`` (a power of two) on ``workers`` processes, in order.

    Chunks cover ``[0, end)``; the last one is open-ended, so rows stored beyond the signed
    head are read and judged exactly as the one-pass verifier judges them.
    """
    if chunk <= 0 or chunk & (chunk - 1):
        raise ValueError("chunk must be a power of two")
    bounds: list[tuple[int, int | None]] = [(lo, lo + chunk) for lo in range(0, end, chunk)]
    last = bounds.pop() if bounds else (0, None)
    bounds.append((last[0], None))
    tasks: queue.SimpleQueue[int] = queue.SimpleQueue()
    for n in range(len(bounds)):
        tasks.put(n)
    results: dict[int, ChunkScan | BaseException] = {}
    ready = threading.Condition()

    def drive(worker: _Worker) -> None:
        try:
            while True:
                try:
                    n = tasks.get_nowait()
                except queue.Empty:
                    return
                try:
                    outcome: ChunkScan | BaseException = worker.scan(*bounds[n], stops)
                except BaseException as exc:  # handed to the consumer, which re-raises it
                    outcome = exc
                with ready:
                    results[n] = outcome
                    ready.notify_all()
                if isinstance(outcome, BaseException):
                    return
        finally:
            worker.close()

    pool = [_Worker(target) for _ in range(max(1, min(workers, len(bounds))))]
    threads = [threading.Thread(target=drive, args=(w,), daemon=True) for w in pool]
    for t in threads:
        t.start()
    try:
        for n in range(len(bounds)):
            with ready:
                ready.wait_for(lambda n=n: n in results or not any(t.is_alive() for t in threads))  # type: ignore[misc]
                outcome = results.get(n)
            if outcome is None:
                raise LedgerUnavailable("verification workers stopped before scanning every chunk")
            if isinstance(outcome, BaseException):
                raise outcome
            yield outcome
    finally:
        while True:
            try:
                tasks.get_nowait()
            except queue.Empty:
                break
        for t in threads:
            t.join(timeout=30)


def _serve() -> None:
    """Worker loop: first line is the database, then one chunk request per line."""
    target_obj = json.loads(sys.stdin.readline())
    target = DriverTarget(target_obj["dialect"], target_obj["dsn"])
    for line in sys.stdin:
        request = json.loads(line)
        try:
            scan = scan_chunk(
                stream_target(target, request["lo"], request["hi"]), request["lo"], request["hi"], request["stops"]
            )
            answer = _scan_to_json(scan)
        except Exception as exc:
            answer = {"error": type(exc).__name__}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _serve()
