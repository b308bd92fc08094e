"""Group commit: concurrent callers share one durable transaction.

Callers queue their requests. When no write is running, the caller that arrives becomes
the leader: it takes the queued requests (up to ``max_batch`` items, never splitting a
request), writes them in one transaction, and wakes exactly the callers whose items it
wrote. If more requests queued up meanwhile, it hands leadership to the oldest of them.
Nobody returns before the transaction that holds their items has committed; if it fails,
every caller in it gets the error and none of their items was written.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Request(Generic[T, R]):
    __slots__ = ("error", "items", "results", "wake")

    def __init__(self, items: Sequence[T]) -> None:
        self.items = items
        self.results: list[R] | None = None
        self.error: BaseException | None = None
        # A bare lock, taken now and released by whoever settles or promotes us: the
        # cheapest wake-up Python has (threading.Event costs a Condition per request).
        self.wake = threading.Lock()
        self.wake.acquire()

    @property
    def settled(self) -> bool:
        return self.results is not None or self.error is not None


class GroupCommit(Generic[T, R]):
    """Batches :meth:`submit` calls from many threads into calls of ``write``.

    ``write`` receives the concatenated items of every request in the batch and must
    return one result per item, in order, once the batch is durable.
    """

    def __init__(self, write: Callable[[list[T]], list[R]], *, max_batch: int = 4096) -> None:
        self._write = write
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: deque[_Request[T, R]] = deque()
        self._busy = False

    @property
    def queued(self) -> int:
        """Requests waiting behind the batch being written (a gauge of how far appends back up)."""
        with self._lock:
            return len(self._queue)

    def submit(self, items: Sequence[T]) -> list[R]:
        """Write ``items`` atomically (all or none) and return their results once durable."""
        request: _Request[T, R] = _Request(items)
        with self._lock:
            self._queue.append(request)
            lead = not self._busy
            self._busy = True
        if not lead:
            request.wake.acquire()  # released once settled by a leader, or promoted to lead
        if not request.settled:
            self._lead()
        if request.error is not None:
            raise request.error
        return request.results if request.results is not None else []

    def _take_batch(self) -> list[_Request[T, R]]:
        batch: list[_Request[T, R]] = []
        count = 0
        while self._queue and (not batch or count + len(self._queue[0].items) <= self._max_batch):
            req = self._queue.popleft()
            batch.append(req)
            count += len(req.items)
        return batch

    def _lead(self) -> None:
        with self._lock:
            batch = self._take_batch()
        flat = [item for req in batch for item in req.items]
        try:
            results = self._write(flat)
            pos = 0
            for req in batch:
                req.results = results[pos : pos + len(req.items)]
                pos += len(req.items)
        except BaseException as exc:  # every caller in the batch must hear of the failure
            for req in batch:
                req.error = exc
        with self._lock:
            successor = self._queue[0] if self._queue else None
            if successor is None:
                self._busy = False
        for req in batch:
            if req.wake.locked():
                req.wake.release()
        if successor is not None:
            successor.wake.release()
