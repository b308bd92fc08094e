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


DEADLINE_S = 30.0


def test_a_refused_request_fails_alone_and_the_rest_of_its_batch_is_written() -> None:
    """``prepare`` puts an error in an item's place: only that item's request fails, with none of its items written."""
    written: list[list[int]] = []
    entered, gate = threading.Event(), threading.Event()

    def prepare(items: list[int]) -> list[int | Exception]:
        entered.set()
        gate.wait(DEADLINE_S)  # the first batch holds the stage while the others queue into one batch
        return [ValueError(f"refused {i}") if i < 0 else i * 10 for i in items]

    def write(items: list[int]) -> list[int]:
        written.append(list(items))
        return items

    gc: GroupCommit[int, int] = GroupCommit(write, prepare=prepare)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(gc.submit, [1])
        assert entered.wait(DEADLINE_S)  # the first caller leads, its batch taken
        others = [pool.submit(gc.submit, items) for items in ([2, 3], [4, -5], [6])]
        deadline = time.monotonic() + DEADLINE_S
        while gc.queued != 3 and time.monotonic() < deadline:
            time.sleep(0.001)
        gate.set()
        assert first.result(DEADLINE_S) == [10]
        assert others[0].result(DEADLINE_S) == [20, 30]
        with pytest.raises(ValueError, match="refused -5"):
            others[1].result(DEADLINE_S)
        assert others[2].result(DEADLINE_S) == [60]
    assert written == [[10], [20, 30, 60]]  # 40 was never written: its request was refused as a whole


@pytest.mark.parametrize("needs_prepare", [True, False])
def test_the_next_batch_is_prepared_while_the_current_one_commits_if_it_needs_preparing(needs_prepare: bool) -> None:
    """``overlap()`` in a write hands leadership on: the queued batch's prepare runs before that write returns. With
    nothing to prepare (``needs_prepare`` false) nothing is handed over: the next batch is taken after the write."""
    prepared_second = threading.Event()
    order: list[str] = []

    def prepare(items: list[int]) -> list[int | Exception]:
        order.append(f"prepare {items}")
        if items == [2]:
            prepared_second.set()
        return list(items)

    def write(items: list[int]) -> list[int]:
        if items == [1]:
            deadline = time.monotonic() + DEADLINE_S
            while gc.queued == 0 and time.monotonic() < deadline:  # the second caller queues behind this write
                time.sleep(0.001)
            gc.overlap()  # all that is left is the disk: the next batch may be prepared now
            assert prepared_second.wait(DEADLINE_S if needs_prepare else 0.05) == needs_prepare
        order.append(f"write {items}")
        return items

    gc: GroupCommit[int, int] = GroupCommit(write, prepare=prepare, needs_prepare=lambda items: needs_prepare)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(gc.submit, [1])
        deadline = time.monotonic() + DEADLINE_S
        while not order and time.monotonic() < deadline:
            time.sleep(0.001)
        second = pool.submit(gc.submit, [2])
        assert (first.result(DEADLINE_S), second.result(DEADLINE_S)) == ([1], [2])
    early = ["prepare [1]", "prepare [2]", "write [1]", "write [2]"]
    assert order == (early if needs_prepare else ["prepare [1]", "write [1]", "prepare [2]", "write [2]"])


def test_many_callers_with_early_handover_and_refusals_each_get_their_own_answer() -> None:
    """64 threads, every write handing over early, one request in seven refused: each caller gets its own results
    or its own error, every accepted item is written exactly once, writes never overlap."""
    written: list[int] = []
    active = threading.Lock()

    def prepare(items: list[int]) -> list[int | Exception]:
        return [ValueError(f"refused {i}") if i % 7 == 3 else i for i in items]

    def write(items: list[int]) -> list[int]:
        assert active.acquire(blocking=False), "two writes at once"
        try:
            gc.overlap()
            time.sleep(0.0005)  # the commit's wait on the disk
            written.extend(items)
            return [-i for i in items]
        finally:
            active.release()

    gc: GroupCommit[int, int] = GroupCommit(write, prepare=prepare, needs_prepare=lambda items: True)

    def call(i: int) -> list[int] | str:
        try:
            return gc.submit([2 * i, 2 * i + 1])
        except ValueError as exc:
            return str(exc)

    with ThreadPoolExecutor(64) as pool:
        answers = [f.result(DEADLINE_S) for f in [pool.submit(call, i) for i in range(1500)]]
    for i, answer in enumerate(answers):
        refused = [n for n in (2 * i, 2 * i + 1) if n % 7 == 3]
        assert answer == (f"refused {refused[0]}" if refused else [-2 * i, -2 * i - 1])
    accepted = sorted(n for i in range(1500) for n in (2 * i, 2 * i + 1) if (2 * i) % 7 != 3 and (2 * i + 1) % 7 != 3)
    assert sorted(written) == accepted


class _PausingLock:
    """A lock whose ``release`` pauses chosen threads right after releasing (as if descheduled there)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.paused: set[threading.Thread] = set()
        self.resume = threading.Event()
        self.released_by: list[str] = []

    def acquire(self) -> bool:
        return self._lock.acquire(timeout=DEADLINE_S)

    def release(self) -> None:
        self._lock.release()
        self.released_by.append(threading.current_thread().name)
        if threading.current_thread() in self.paused:
            assert self.resume.wait(DEADLINE_S)


def test_two_hand_overs_before_the_first_writer_resumes_each_keep_their_own_baton() -> None:
    """Writer W passes the write lock to T2, which passes it to T3, before W or T2 get back to wait for their baton:
    each waits for its own successor, nothing is released twice (a shared baton raised ``release unlocked lock``
    and left the write lock held by a thread that had given up)."""
    gc: GroupCommit[int, int] = GroupCommit(lambda items: items)
    pausing = _PausingLock()
    gc._writing = pausing  # type: ignore[assignment]
    errors: list[BaseException] = []
    have = {name: threading.Event() for name in ("w", "t2", "t3")}
    go_pass = {name: threading.Event() for name in ("w", "t2")}

    def writer(name: str) -> None:
        try:
            gc._take_writing()
            have[name].set()
            if name in go_pass:
                assert go_pass[name].wait(DEADLINE_S)
            gc._pass_writing()
        except BaseException as exc:
            errors.append(exc)

    def wait_for_a_waiting_writer() -> None:
        deadline = time.monotonic() + DEADLINE_S
        while not gc._writer_waiting and time.monotonic() < deadline:
            time.sleep(0.001)
        assert gc._writer_waiting

    threads = {name: threading.Thread(target=writer, args=(name,), name=name, daemon=True) for name in have}
    pausing.paused = {threads["w"], threads["t2"]}
    threads["w"].start()
    assert have["w"].wait(DEADLINE_S)
    threads["t2"].start()
    wait_for_a_waiting_writer()
    go_pass["w"].set()  # W hands over to T2 and pauses before waiting for its baton
    assert have["t2"].wait(DEADLINE_S)
    threads["t3"].start()
    wait_for_a_waiting_writer()
    go_pass["t2"].set()  # T2 hands over to T3 and pauses too
    assert have["t3"].wait(DEADLINE_S)
    pausing.resume.set()
    for thread in threads.values():
        thread.join(DEADLINE_S)
    assert not errors
    assert not any(thread.is_alive() for thread in threads.values())
    assert pausing.released_by == ["w", "t2", "t3"]
    assert pausing.acquire()  # the write lock is free again
