"""Group commit: concurrent callers share one durable transaction.

The first caller to arrive while no write is running becomes the leader: it takes every
request queued so far, writes them in one transaction, and wakes the others with their
results. Callers that arrive meanwhile queue up for the next leader. Nobody returns before
the transaction that holds their items has committed; if it fails, every caller in it
gets the error and none of their items was written.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Request(Generic[T, R]):
    __slots__ = ("error", "items", "results")

    def __init__(self, items: Sequence[T]) -> None:
        self.items = items
        self.results: list[R] | None = None
        self.error: BaseException | None = None

    @property
    def settled(self) -> bool:
        return self.results is not None or self.error is not None


class GroupCommit(Generic[T, R]):
    """Batches :meth:`submit` calls from many threads into calls of ``write``.

    ``write`` receives the concatenated items of every request in the batch and must
    return one result per item, in order, after the batch is durable.
    """

    def __init__(self, write: Callable[[list[T]], list[R]], *, max_batch: int = 8192) -> None:
        self._write = write
        self._max_batch = max_batch
        self._cond = threading.Condition()
        self._queue: deque[_Request[T, R]] = deque()
        self._busy = False

    def submit(self, items: Sequence[T]) -> list[R]:
        """Write ``items`` atomically (all or none) and return their results once durable."""
        request: _Request[T, R] = _Request(items)
        with self._cond:
            self._queue.append(request)
        while True:
            with self._cond:
                while self._busy and not request.settled:
                    self._cond.wait()
                if request.settled:
                    break
                self._busy = True
                batch = self._take_batch()
            self._lead(batch)
        if request.error is not None:
            raise request.error
        return request.results or []

    def _take_batch(self) -> list[_Request[T, R]]:
        batch: list[_Request[T, R]] = []
        count = 0
        while self._queue and (not batch or count + len(self._queue[0].items) <= self._max_batch):
            req = self._queue.popleft()
            batch.append(req)
            count += len(req.items)
        return batch

    def _lead(self, batch: list[_Request[T, R]]) -> None:
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
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()
