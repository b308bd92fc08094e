"""The ledger writer process: one sequencer for every gateway worker of a ``serve``.

Workers send ready-made entries over a local Unix socket (:mod:`mlwarden.ledger.wire`);
the sequencer commits what every connection sent in shared group commits and answers
each connection with one frame of receipts per batch. It is one thread on one event
loop: while a batch commits (blocking), new frames wait in the kernel and form the
next batch; ``batch_wait`` lets a small batch wait a fraction of a millisecond to grow.

Only peers running as the same uid may connect (``SO_PEERCRED``); a malformed frame
closes that connection and nothing else. The head is signed once per ``sign_interval``
while entries arrive, once more when they stop, and at a clean shutdown.

Batches: frames read in one pass of the loop (including everything that arrived while
the previous batch committed) form a batch; while it keeps growing from one look to the
next, it waits up to ``batch_wait`` seconds for the rest of the workers' entries.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections import deque
from pathlib import Path
from typing import cast

import structlog

from mlwarden.errors import MlwardenError
from mlwarden.ledger.entry import PreparedEntry
from mlwarden.ledger.local_socket import bind_private, peer_credentials
from mlwarden.ledger.log import Log
from mlwarden.ledger.wire import ENTRIES, WireError, acks_frame, decode_entries, failed_frame, split_frames

log = structlog.get_logger("mlwarden.ledger.writer")
MAX_BATCH = 8192
GROW_PAUSE_S = 0.00005
"""While a small batch still grows, look again for more frames after this pause (within ``batch_wait``)."""
READY = b"ready\n"


class _Connection(asyncio.Protocol):
    """One worker's connection: frames in, receipts out."""

    def __init__(self, sequencer: Sequencer) -> None:
        self._sequencer = sequencer
        self._buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.peer_pid = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)  # a stream server's transport, whatever its class
        self.peer_pid, uid = peer_credentials(stream.get_extra_info("socket"))
        if uid != os.getuid():
            log.warning("ledger_writer_peer_refused", peer_uid=uid)
            stream.abort()
            return
        self.transport = stream
        self._sequencer.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        self._buffer += data
        try:
            for kind, body in split_frames(self._buffer):
                if kind != ENTRIES:
                    raise WireError(f"unexpected frame type {kind!r}")
                self._sequencer.enqueue(self, decode_entries(body))
        except WireError as exc:
            log.warning("ledger_writer_bad_frame", reason=exc.message[:200])
            self.transport.abort()
            self.transport = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._sequencer.connections.discard(self)
        self._sequencer.changed()

    def answer(self, frame: bytes) -> None:
        if self.transport is not None:
            self.transport.write(frame)


class Sequencer:
    """Serve one ledger to many local workers; see the module docstring."""

    def __init__(self, ledger: Log, socket_path: Path, *, batch_wait: float = 0.0005) -> None:
        self._log = ledger
        self._path = socket_path
        self._batch_wait = batch_wait
        self._pending: deque[tuple[_Connection, list[PreparedEntry]]] = deque()
        self._count = 0
        self._scheduled = False
        self._first_at = 0.0
        self._seen = 0
        self._sign_timer: asyncio.TimerHandle | None = None
        self._changed: asyncio.Event | None = None
        self.connections: set[_Connection] = set()
        self.batches = 0
        self.recorded: dict[int, int] = {}
        """Entries committed per peer process id (logged at shutdown)."""

    # ------------------------------------------------------------------ batching
    def enqueue(self, connection: _Connection, entries: list[PreparedEntry]) -> None:
        """Queue a connection's entries for the next batch (they are never split across batches)."""
        if not entries:
            return
        self._pending.append((connection, entries))
        self._count += len(entries)
        if not self._scheduled:
            self._scheduled = True
            self._first_at = time.perf_counter()
            # A timer, not call_soon: timers run after the readers of the loop's next pass,
            # so frames that arrived meanwhile join this batch.
            asyncio.get_running_loop().call_later(0, self._commit)

    def _commit(self) -> None:
        """Commit now, unless the batch is still growing and has waited less than ``batch_wait``."""
        grew, self._seen = self._count > self._seen, self._count
        if grew and self._count < MAX_BATCH and time.perf_counter() - self._first_at < self._batch_wait:
            time.sleep(GROW_PAUSE_S)  # frames arriving meanwhile are read before the next look
            asyncio.get_running_loop().call_later(0, self._commit)
            return
        self._commit_now()

    def _commit_now(self) -> None:
        taken: list[tuple[_Connection, list[PreparedEntry]]] = []
        count = 0
        while self._pending and (not taken or count + len(self._pending[0][1]) <= MAX_BATCH):
            connection, entries = self._pending.popleft()
            taken.append((connection, entries))
            count += len(entries)
        self._count -= count
        self._seen = 0
        self._write(taken, count)
        self.batches += 1
        if self._pending:
            self._first_at = time.perf_counter()
            asyncio.get_running_loop().call_later(0, self._commit_now)
        else:
            self._scheduled = False
        self._arm_signing()
        self.changed()

    def _write(self, taken: list[tuple[_Connection, list[PreparedEntry]]], count: int) -> None:
        try:
            receipts = self._log.append_many([entry for _, entries in taken for entry in entries])
        except Exception as exc:  # the writer goes on; who hears of it depends on whose entries failed
            if len(taken) > 1:  # one worker's bad entry (a reused reference) must not fail the others'
                for one in taken:
                    self._write([one], len(one[1]))
                return
            message = exc.message if isinstance(exc, MlwardenError) else "the ledger writer failed to commit"
            log.warning("ledger_writer_commit_failed", reason=message[:200], entries=count)
            taken[0][0].answer(failed_frame(count, message))
            return
        answers: dict[_Connection, list[tuple[int, bytes]]] = {}
        at = 0
        for connection, entries in taken:
            answers.setdefault(connection, []).extend((r.index, r.leaf_hash) for r in receipts[at : at + len(entries)])
            at += len(entries)
        for connection, acks in answers.items():
            connection.answer(acks_frame(acks))
            self.recorded[connection.peer_pid] = self.recorded.get(connection.peer_pid, 0) + len(acks)

    # ------------------------------------------------------------------ signing
    def _arm_signing(self) -> None:
        if self._sign_timer is None and self._log.unsigned:
            self._sign_timer = asyncio.get_running_loop().call_later(self._log.sign_interval, self._sign_due)

    def _sign_due(self) -> None:
        """Entries stopped arriving before the interval's signature: sign what was committed."""
        self._sign_timer = None
        if self._log.unsigned:
            try:
                self._log.sign_head()
            except MlwardenError as exc:
                log.warning("ledger_writer_sign_failed", reason=exc.message[:200])
        self._arm_signing()

    # ------------------------------------------------------------------ lifecycle
    def changed(self) -> None:
        """Wake :meth:`serve`'s shutdown wait (a batch ended or a connection closed)."""
        if self._changed is not None:
            self._changed.set()

    async def serve(self, *, lifeline: socket.socket | None = None, grace: float = 10.0) -> None:
        """Listen until stopped, then drain, sign and stop.

        With a ``lifeline`` (one end of a socket pair whose other end the supervisor holds),
        say ``ready`` on it once listening and stop when it closes: when ``serve`` stops the
        writer, or dies. Without one, stop on SIGTERM.
        """
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        self._changed = asyncio.Event()
        server = await loop.create_unix_server(lambda: _Connection(self), sock=bind_private(self._path))
        if lifeline is None:
            loop.add_signal_handler(signal.SIGTERM, stop.set)
        else:
            lifeline.setblocking(False)
            loop.add_reader(lifeline.fileno(), _on_lifeline, loop, lifeline, stop)
        log.info("ledger_writer_started", pid=os.getpid(), ledger_size=self._log.size())
        if lifeline is not None:
            await loop.sock_sendall(lifeline, READY)
        try:
            await stop.wait()
        finally:
            server.close()
            await self._drain(grace)
            self._path.unlink(missing_ok=True)
        log.info("ledger_writer_stopped", batches=self.batches, recorded={str(k): v for k, v in self.recorded.items()})

    async def _drain(self, grace: float) -> None:
        """Commit what is queued; give connected workers ``grace`` seconds to finish and hang up."""
        deadline = time.monotonic() + grace
        while (self._pending or self.connections) and time.monotonic() < deadline:
            changed = self._changed
            if changed is None:  # pragma: no cover - set by serve
                break
            changed.clear()
            try:
                await asyncio.wait_for(changed.wait(), timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                break
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.close()


def _on_lifeline(loop: asyncio.AbstractEventLoop, lifeline: socket.socket, stop: asyncio.Event) -> None:
    try:
        data = lifeline.recv(64)
    except BlockingIOError:
        return
    except OSError:
        data = b""
    if not data:  # the supervisor closed its end, or exited
        loop.remove_reader(lifeline.fileno())
        stop.set()


def run(
    ledger: Log,
    socket_path: Path,
    *,
    batch_wait: float = 0.0005,
    grace: float = 10.0,
    lifeline: socket.socket | None = None,
) -> None:
    """Run a sequencer in this process until stopped (see :meth:`Sequencer.serve`).

    Under a supervisor (a ``lifeline``), SIGINT and SIGTERM sent to the whole process group
    are left to ``serve``: it stops the writer after its workers, so their last entries count.
    """
    if lifeline is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    asyncio.run(Sequencer(ledger, socket_path, batch_wait=batch_wait).serve(lifeline=lifeline, grace=grace))
