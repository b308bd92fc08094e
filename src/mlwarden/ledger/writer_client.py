"""A gateway worker's side of the ledger writer: await a receipt, no thread, one write per loop pass.

``await client.append(entry)`` encodes the entry and queues it; the entries queued during
one pass of the event loop leave in one write to the writer's socket, and the receipts
of a batch come back in one frame. The future resolves only when the writer has committed
the entry. If the writer is gone (or silent past ``timeout``), every waiting entry fails
with :class:`LedgerUnavailable` — the caller answers 503, never unrecorded — and the next
append reconnects.
"""

from __future__ import annotations

import asyncio
from collections import deque
from pathlib import Path
from typing import cast

from mlwarden.errors import LedgerUnavailable
from mlwarden.ledger.entry import PreparedEntry
from mlwarden.ledger.local_socket import short_address
from mlwarden.ledger.log import Receipt
from mlwarden.ledger.wire import Ack, Failure, WireError, decode_answer, encode_entry, entries_frames, split_frames

GONE = "the ledger writer went away before confirming the entry"


class _Channel(asyncio.Protocol):
    """One connection to the writer: a FIFO of entries sent and futures waiting for their receipts."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._transport: asyncio.Transport | None = None
        self._outbox: list[bytes] = []
        self._waiting: list[asyncio.Future[Receipt]] = []
        self._inflight: deque[asyncio.Future[Receipt]] = deque()
        self._buffer = bytearray()
        self._flush_due = False
        self._watchdog: asyncio.TimerHandle | None = None
        self._progress = 0.0
        self.open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, whatever its class (uvloop's do not derive from asyncio.Transport).
        self._transport = cast(asyncio.Transport, transport)
        self.open = True

    def send(self, entry: PreparedEntry) -> asyncio.Future[Receipt]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Receipt] = loop.create_future()
        self._outbox.append(encode_entry(entry))
        self._waiting.append(future)
        if not self._flush_due:
            self._flush_due = True
            loop.call_soon(self._flush)  # after every callback of this pass has queued its entry
        return future

    def _flush(self) -> None:
        self._flush_due = False
        if not self._outbox:
            return
        if self._transport is None:
            self._fail_all(GONE)
            return
        loop = asyncio.get_running_loop()
        if not self._inflight:
            self._progress = loop.time()
        self._transport.write(b"".join(frame for frame, _count in entries_frames(self._outbox)))
        self._inflight.extend(self._waiting)
        self._outbox, self._waiting = [], []
        if self._watchdog is None:
            self._watchdog = loop.call_later(self._timeout, self._watch)

    def _watch(self) -> None:
        self._watchdog = None
        if not self._inflight or self._transport is None:
            return
        loop = asyncio.get_running_loop()
        if loop.time() - self._progress >= self._timeout:
            self._transport.abort()  # connection_lost fails every waiting entry
            return
        self._watchdog = loop.call_later(self._timeout, self._watch)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            for kind, body in split_frames(self._buffer):
                self._answer(decode_answer(kind, body))
        except WireError:
            if self._transport is not None:
                self._transport.abort()

    def _answer(self, answer: list[Ack] | Failure) -> None:
        self._progress = asyncio.get_running_loop().time()
        if not isinstance(answer, Failure):
            if len(answer) > len(self._inflight):
                raise WireError("the ledger writer confirmed more entries than were sent")
            for ack in answer:
                future = self._inflight.popleft()
                if not future.done():
                    future.set_result(Receipt(ack.index, ack.leaf_hash))
            return
        message = answer.message
        for _ in range(min(answer.count, len(self._inflight))):
            future = self._inflight.popleft()
            if not future.done():
                future.set_exception(LedgerUnavailable(f"the ledger writer could not record the entry: {message}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        self._transport = None
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._fail_all(GONE)

    def _fail_all(self, message: str) -> None:
        pending = [*self._inflight, *self._waiting]
        self._inflight.clear()
        self._outbox, self._waiting = [], []
        for future in pending:
            if not future.done():
                future.set_exception(LedgerUnavailable(message))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class WriterClient:
    """Durable appends through the ``serve`` ledger writer (the same interface as ``AsyncAppender``)."""

    def __init__(self, socket_path: Path, *, timeout: float = 10.0) -> None:
        self._path = socket_path
        self._timeout = timeout
        self._channel: _Channel | None = None
        self._connecting: asyncio.Task[_Channel] | None = None

    async def append(self, entry: PreparedEntry) -> Receipt:
        """Durably record ``entry``; raises :class:`LedgerUnavailable` when the writer cannot confirm it."""
        channel = self._channel
        if channel is None or not channel.open:
            channel = await self._connect()
        return await channel.send(entry)

    async def ready(self) -> None:
        """Raise :class:`LedgerUnavailable` unless the writer accepts a connection."""
        channel = self._channel
        if channel is None or not channel.open:
            await self._connect()

    async def _connect(self) -> _Channel:
        """One connection attempt at a time, shared by every caller (and not cancelled with any of them)."""
        attempt = self._connecting
        if attempt is None:
            attempt = asyncio.get_running_loop().create_task(self._open())
            attempt.add_done_callback(self._opened)
            self._connecting = attempt
        return await asyncio.shield(attempt)

    async def _open(self) -> _Channel:
        loop = asyncio.get_running_loop()
        try:
            with short_address(self._path) as address:
                _transport, channel = await loop.create_unix_connection(lambda: _Channel(self._timeout), address)
        except OSError as exc:
            raise LedgerUnavailable(f"the ledger writer is not available: {exc.strerror or exc}") from exc
        return channel

    def _opened(self, attempt: asyncio.Task[_Channel]) -> None:
        self._connecting = None
        if not attempt.cancelled() and attempt.exception() is None:  # retrieved: no "never retrieved" warning
            self._channel = attempt.result()

    def close(self) -> None:
        """Hang up (the writer commits what it already received)."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
