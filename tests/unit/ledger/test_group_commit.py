"""Group commit: concurrent submissions share transactions; failures reach every caller in the batch."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from mlwarden.ledger.group_commit import GroupCommit


def test_concurrent_submissions_are_batched_and_answered_in_order() -> None:
    """64 threads get their own results back while the writer sees far fewer, larger batches."""
    batches: list[int] = []
    counter = iter(range(10**9))
    lock = threading.Lock()

    def write(items: list[int]) -> list[tuple[int, int]]:
        time.sleep(0.002)  # a commit takes time; arrivals meanwhile queue for the next batch
        with lock:
            batches.append(len(items))
            return [(item, next(counter)) for item in items]

    gc: GroupCommit[int, tuple[int, int]] = GroupCommit(write)
    with ThreadPoolExecutor(64) as pool:
        results = list(pool.map(lambda i: gc.submit([i])[0], range(2000)))
    assert [r[0] for r in results] == list(range(2000))
    assert sorted(r[1] for r in results) == list(range(2000))
    assert sum(batches) == 2000
    assert len(batches) < 2000 / 4, f"expected batching, got {len(batches)} transactions"


def test_a_failed_write_fails_every_caller_in_it_and_writes_nothing() -> None:
    """When the transaction fails, each caller in the batch gets the error; later batches still work."""
    fail = threading.Event()
    fail.set()
    written: list[int] = []

    def write(items: list[int]) -> list[int]:
        if fail.is_set():
            raise OSError("disk full")
        written.extend(items)
        return items

    gc: GroupCommit[int, int] = GroupCommit(write)
    with pytest.raises(OSError, match="disk full"):
        gc.submit([1, 2, 3])
    assert written == []
    fail.clear()
    assert gc.submit([4, 5]) == [4, 5]
    assert written == [4, 5]


def test_multi_item_request_is_never_split_across_batches() -> None:
    """A request's items arrive in one write call (so an all-or-nothing file stays atomic)."""
    seen: list[list[int]] = []

    def write(items: list[int]) -> list[int]:
        seen.append(list(items))
        return items

    gc: GroupCommit[int, int] = GroupCommit(write, max_batch=4)
    assert gc.submit(list(range(10))) == list(range(10))
    assert [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] in seen
