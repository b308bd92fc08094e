"""Durable appends for asyncio code: handlers await a future, one writer thread group-commits.

The event loop never blocks on the database: ``await appender.append(entry)`` queues the
entry and returns its receipt once the batch holding it has committed. One writer thread
drains the queue into :meth:`Log.append_many` (so it shares the log's group commit with
any synchronous appenders in the process) and resolves the futures on the loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Protocol

from mlwarden.errors import LedgerUnavailable
from mlwarden.ledger.entry import PreparedEntry
from mlwarden.ledger.log import Log, Receipt

MAX_BATCH = 2048


class EntryAppender(Protocol):
    """How event-loop code records: in process (:class:`AsyncAppender`) or through ``serve``'s ledger writer."""

    async def append(self, entry: PreparedEntry) -> Receipt:
        """Durably record ``entry``; raise :class:`LedgerUnavailable` if it could not be committed."""
        ...

    async def ready(self) -> None:
        """Raise :class:`LedgerUnavailable` unless appends can be recorded now."""
        ...

    def close(self) -> None:
        """Stop; what was already handed over is still committed."""
        ...


class AsyncAppender:
    """Queue entries from the event loop; a single writer thread commits them in batches."""

    def __init__(self, log: Log) -> None:
        self._log = log
        self._cond = threading.Condition()
        self._queue: deque[tuple[PreparedEntry, asyncio.Future[Receipt], asyncio.AbstractEventLoop]] = deque()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="mlwarden-ledger-writer", daemon=True)
        self._thread.start()

    async def append(self, entry: PreparedEntry) -> Receipt:
        """Durably record ``entry``; raises :class:`LedgerUnavailable` if it could not be committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Receipt] = loop.create_future()
        with self._cond:
            if self._closed:
                raise LedgerUnavailable("the ledger writer is shut down")
            self._queue.append((entry, future, loop))
            self._cond.notify()
        return await future

    async def ready(self) -> None:
        """Raise :class:`LedgerUnavailable` once closed (the database itself is checked by its caller)."""
        if self._closed:
            raise LedgerUnavailable("the ledger writer is shut down")

    def close(self) -> None:
        """Finish what is queued, then stop the writer."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue and self._closed:
                    return
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), MAX_BATCH))]
            try:
                receipts = self._log.append_many([entry for entry, _, _ in batch])
            except Exception as exc:  # every waiter of the failed batch hears of it
                for _, future, loop in batch:
                    loop.call_soon_threadsafe(_fail, future, exc)
                continue
            for (_, future, loop), receipt in zip(batch, receipts, strict=True):
                loop.call_soon_threadsafe(_succeed, future, receipt)


def _succeed(future: asyncio.Future[Receipt], receipt: Receipt) -> None:
    if not future.done():
        future.set_result(receipt)


def _fail(future: asyncio.Future[Receipt], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)
