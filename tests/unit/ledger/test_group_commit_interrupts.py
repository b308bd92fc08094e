"""The group commit under interrupts (Ctrl-C in the main thread) and a faulty ``needs_prepare``: a committed batch is
reported committed, a writer handing over never waits for a leader that gave up, the batch being written never fails
for the next caller's sake. (From a review of the two-stage group commit; each test failed on its first version.)"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from mlwarden.ledger.group_commit import GroupCommit

WAIT_S = 10.0


class Interrupted(BaseException):
    """What the signal handler raises in the main thread (KeyboardInterrupt's stand-in, so pytest is not stopped)."""


@pytest.fixture
def interrupt_main() -> Iterator[Callable[[], None]]:
    """Interrupts the main thread (where the test runs) with :class:`Interrupted`, by a real signal as Ctrl-C would."""
    assert threading.current_thread() is threading.main_thread()
    main = threading.main_thread().ident
    assert main is not None

    def raise_interrupted(_signum: int, _frame: object) -> None:
        raise Interrupted

    old = signal.signal(signal.SIGUSR1, raise_interrupted)
    try:
        yield lambda: signal.pthread_kill(main, signal.SIGUSR1)
    finally:
        signal.signal(signal.SIGUSR1, old)


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_a_leader_interrupted_while_waiting_for_the_write_lock_does_not_strand_the_writer(
    interrupt_main: Callable[[], None],
) -> None:
    """The main thread, promoted by ``overlap()``, is interrupted while it waits for the write lock: the writer
    handing the lock over does not wait for it, and its caller gets its answer."""
    main_gave_up = threading.Event()
    answers: list[object] = []

    def write(items: list[int]) -> list[int]:
        if items == [1]:
            _until(lambda: gc.queued == 1)
            gc.overlap()  # the main thread's request leads now: it prepares, then waits for the write lock
            _until(lambda: gc._writer_waiting)
            time.sleep(0.05)  # blocked in _writing.acquire()
            interrupt_main()
            assert main_gave_up.wait(WAIT_S)
        return items

    gc: GroupCommit[int, int] = GroupCommit(write, prepare=list, needs_prepare=lambda items: True)
    writer = threading.Thread(target=lambda: answers.append(gc.submit([1])), daemon=True)
    writer.start()
    _until(lambda: gc._busy)
    with pytest.raises(Interrupted):
        gc.submit([2])
    main_gave_up.set()
    writer.join(WAIT_S)
    assert not writer.is_alive(), "the writer waits for a baton nobody will release"
    assert answers == [[1]]


def test_an_interrupt_while_handing_the_write_lock_on_leaves_the_written_batch_answered(
    interrupt_main: Callable[[], None],
) -> None:
    """The main thread leads a batch of two callers, writes it, and is interrupted while it waits for the next writer
    to take the lock: the other caller of the written batch gets its results (not the interrupt), the interrupt
    reaches the main thread alone, and the next batch is written."""
    committed: list[list[int]] = []
    answers: dict[str, object] = {}
    take_pause = threading.Event()

    class SlowTakeLock:
        """The write lock; the thread named 'next' pauses right after taking it, before releasing its baton."""

        def __init__(self) -> None:
            self._lock = threading.Lock()

        def acquire(self) -> bool:
            got = self._lock.acquire(timeout=WAIT_S)
            if threading.current_thread().name == "next":
                take_pause.wait(WAIT_S)
            return got

        def release(self) -> None:
            self._lock.release()

    def write(items: list[int]) -> list[int]:
        if items == [0]:
            _until(lambda: gc.queued == 2)  # the main thread's [1], then [10]: the main thread leads them next
        elif items == [1, 10]:
            _until(lambda: gc.queued == 1)  # 'next' queued behind this write
            gc.overlap()
            _until(lambda: gc._writer_waiting)
        committed.append(list(items))
        return items

    gc: GroupCommit[int, int] = GroupCommit(write, prepare=list, needs_prepare=lambda items: True)
    gc._writing = SlowTakeLock()  # type: ignore[assignment]

    def call(name: str, items: list[int]) -> None:
        answers[name] = gc.submit(items)

    def choreography() -> None:
        _until(lambda: gc.queued == 1)  # the main thread's [1] waits behind [0]
        threading.Thread(target=call, args=("other", [10]), daemon=True).start()
        _until(lambda: committed == [[0]] and gc.queued == 0)  # the main thread took [1, 10]
        threading.Thread(target=call, args=("next", [2]), name="next", daemon=True).start()
        _until(lambda: committed == [[0], [1, 10]] and gc._baton is not None)
        time.sleep(0.05)  # the main thread waits for its baton in _pass_writing
        interrupt_main()
        time.sleep(0.05)
        take_pause.set()

    threading.Thread(target=call, args=("first", [0]), daemon=True).start()
    _until(lambda: gc._busy)
    helper = threading.Thread(target=choreography, daemon=True)
    helper.start()
    with pytest.raises(Interrupted):
        gc.submit([1])
    helper.join(WAIT_S)
    _until(lambda: len(answers) == 3)
    assert answers == {"first": [0], "other": [10], "next": [2]}
    assert committed == [[0], [1, 10], [2]]


def test_a_needs_prepare_that_raises_does_not_fail_the_batch_being_written() -> None:
    """``needs_prepare`` is asked about the next caller's items during this write: its error means no early
    hand-over, not a failed write."""
    answers: dict[int, object] = {}

    def needs_prepare(items: object) -> bool:
        raise RuntimeError("needs_prepare bug")

    def write(items: list[int]) -> list[int]:
        if items == [1]:
            _until(lambda: gc.queued == 1)
            gc.overlap()
        return items

    gc: GroupCommit[int, int] = GroupCommit(write, prepare=list, needs_prepare=needs_prepare)

    def call(n: int) -> None:
        try:
            answers[n] = gc.submit([n])
        except Exception as exc:  # what a caller would be told
            answers[n] = exc

    first = threading.Thread(target=call, args=(1,), daemon=True)
    first.start()
    _until(lambda: gc._busy)
    second = threading.Thread(target=call, args=(2,), daemon=True)
    second.start()
    first.join(WAIT_S)
    second.join(WAIT_S)
    assert answers == {1: [1], 2: [2]}


@pytest.mark.parametrize("promoted_by", ["end of write", "overlap"])
def test_a_waiter_interrupted_before_its_promotion_passes_it_on(
    interrupt_main: Callable[[], None], promoted_by: str
) -> None:
    """A queued caller interrupted while it waits leaves the queue; when the leader then promotes it, leadership goes
    to the next caller instead of to nobody (later submits would wait forever)."""
    in_write, release = threading.Event(), threading.Event()

    def write(items: list[int]) -> list[int]:
        if items == [1]:
            in_write.set()
            assert release.wait(WAIT_S)
            if promoted_by == "overlap":
                gc.overlap()
        return items

    gc: GroupCommit[int, int] = GroupCommit(write, prepare=list, needs_prepare=lambda items: True)
    answers: list[object] = []
    first = threading.Thread(target=lambda: answers.append(gc.submit([1])), daemon=True)
    first.start()
    assert in_write.wait(WAIT_S)

    def interrupt_soon() -> None:
        _until(lambda: gc.queued == 1)
        time.sleep(0.05)  # the main thread waits for its wake
        interrupt_main()

    threading.Thread(target=interrupt_soon, daemon=True).start()
    with pytest.raises(Interrupted):
        gc.submit([2])
    queued = threading.Thread(target=lambda: answers.append(gc.submit([3])), daemon=True)
    queued.start()
    _until(lambda: gc.queued == 1)  # [3] waits behind the write of [1]
    release.set()
    first.join(WAIT_S)
    queued.join(WAIT_S)
    assert not queued.is_alive(), f"submit([3]) waits forever: busy={gc._busy}, queued={gc.queued}"
    assert sorted(answers, key=str) == [[1], [3]]
    assert gc.submit([4]) == [4]
