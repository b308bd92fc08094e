"""The persistent ledger: durable group-committed appends, signed heads, checkpoints and proofs.

Storage layout (see ``mlwarden.store.schema``):

* ``ledger_entries``: index, leaf hash and the canonical entry text;
* ``ledger_nodes``: every perfect subtree hash ``(level, idx)``, written as it completes,
  so any proof or historical root is ``O(log n)`` stored hashes, fetched in one query;
* ``ledger_head``: the size and the frontier of the head, updated in the same transaction
  as the entries, and a signed checkpoint note of it, re-signed at most every
  ``sign_interval`` seconds (so the note may lag the head; anything that needs an entry
  covered by a signature asks :meth:`Log.sign_head`, which signs the head on demand);
* ``ledger_checkpoints``: checkpoints taken on purpose, also published as files.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from time import monotonic as _monotonic
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, bindparam, func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from mlwarden.errors import (
    IntegrityError,
    InvalidInput,
    LedgerUnavailable,
    MlwardenError,
    NotFound,
    VerificationError,
)
from mlwarden.ledger.entry import Appendable, Entry, PendingEntry, PreparedEntry, finish_entries, utc_now
from mlwarden.ledger.group_commit import GroupCommit
from mlwarden.ledger.merkle import verify_consistency, verify_inclusion
from mlwarden.ledger.notes import Checkpoint, NoteSigner, NoteVerifier
from mlwarden.ledger.parallel import CHUNK, MIN_ENTRIES, parallel_scans, worker_count
from mlwarden.ledger.ranges import (
    Frontier,
    Node,
    consistency_ranges,
    fold_frontier,
    inclusion_ranges,
    proof_nodes,
    range_hash,
    root_nodes,
)
from mlwarden.ledger.verify import (
    CheckpointSource,
    Finding,
    Row,
    Scanner,
    VerifyReport,
    scan_chunk,
    verify_scanned,
)
from mlwarden.store.engine import describe_db_error, write_transaction
from mlwarden.store.rows import DriverTarget, stream_rows
from mlwarden.store.schema import (
    ledger_checkpoints,
    ledger_entries,
    ledger_head,
    ledger_nodes,
    ledger_refs,
    privacy_rows,
)
from mlwarden.store.writelock import WriterLock

HEAD_ID = 1
LATEST_FILE = "latest.txt"
PUBLISH_INTERVAL_S = 1.0
"""How often, at most, a writer publishes its newest head to ``checkpoints/latest.txt``."""
SIGN_INTERVAL_S = 1.0
"""How often, at most, group commits re-sign the head (one Ed25519 signature per interval, not per commit)."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """Proof of recording returned to the caller once the entry is durable."""

    index: int
    leaf_hash: bytes

    def to_json(self) -> dict[str, Any]:
        """``{"index": N, "leaf_hash": "<hex>"}``."""
        return {"index": self.index, "leaf_hash": self.leaf_hash.hex()}


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """An RFC 9162 inclusion proof with what it proves."""

    index: int
    tree_size: int
    leaf_hash: bytes
    root_hash: bytes
    path: list[bytes]

    def to_json(self) -> dict[str, Any]:
        """JSON with hex hashes."""
        return {
            "index": self.index,
            "tree_size": self.tree_size,
            "leaf_hash": self.leaf_hash.hex(),
            "root_hash": self.root_hash.hex(),
            "proof": [h.hex() for h in self.path],
        }


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """An RFC 9162 consistency proof between two tree sizes."""

    old_size: int
    new_size: int
    old_root: bytes
    new_root: bytes
    path: list[bytes]

    def to_json(self) -> dict[str, Any]:
        """JSON with hex hashes."""
        return {
            "old_size": self.old_size,
            "new_size": self.new_size,
            "old_root": self.old_root.hex(),
            "new_root": self.new_root.hex(),
            "proof": [h.hex() for h in self.path],
        }


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """An entry as stored: index, leaf hash and canonical text."""

    index: int
    leaf_hash: bytes
    text: str

    def parse(self) -> Entry:
        """The parsed entry."""
        return Entry.parse(self.text)


EntryRow = tuple[int, bytes, str, str, str, str, str, str | None, int | None]
"""A ``ledger_entries`` row: index, leaf hash, kind, subject, text, principal, time, decision, status."""

_INSERTS = {
    "entries": "INSERT INTO ledger_entries (idx, leaf_hash, kind, subject, entry, principal, entry_time, decision, "
    "status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "nodes": "INSERT INTO ledger_nodes (level, idx, hash) VALUES (?, ?, ?)",
    "refs": "INSERT INTO ledger_refs (ref, idx) VALUES (?, ?)",
    "payloads": "INSERT INTO privacy_rows (decision_id, day, inputs_key, outputs_key, share, inputs, outputs, "
    "ledger_index) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    "head": "UPDATE ledger_head SET size = ?, frontier = ?, note = ? WHERE id = ?",
    "head_unsigned": "UPDATE ledger_head SET size = ?, frontier = ? WHERE id = ?",
    "read_head": "SELECT size, frontier FROM ledger_head WHERE id = ?",
    "read_entry": "SELECT entry FROM ledger_entries WHERE idx = ?",
}


@functools.lru_cache(maxsize=8)
def _insert_sql(name: str, qmark: bool) -> str:
    """The hot-path statements, in the driver's own parameter style (no per-call compiling)."""
    sql = _INSERTS[name]
    return sql if qmark else sql.replace("?", "%s")


@functools.lru_cache(maxsize=256)
def _nodes_sql(count: int, qmark: bool) -> str:
    """One OR of primary-key lookups: SQLite and PostgreSQL both answer it from the index."""
    mark = "?" if qmark else "%s"
    where = " OR ".join(f"(level = {mark} AND idx = {mark})" for _ in range(count))
    return f"SELECT level, idx, hash FROM ledger_nodes WHERE {where}"  # noqa: S608 - only bound parameters vary


def ref_index(ref: Any) -> ColumnElement[Any]:
    """The index of the entry recorded with reference ``ref`` (a value or a bound parameter), as SQL.

    A sealed prediction's decision ids are indexed once, by its payload rows
    (``privacy_rows.ledger_index``), not also in ``ledger_refs``; everything else by ``ledger_refs``.
    A lookup only: whoever uses the index checks that the entry's text records ``ref``.
    """
    sealed = select(privacy_rows.c.ledger_index).where(privacy_rows.c.decision_id == ref).scalar_subquery()
    return func.coalesce(sealed, select(ledger_refs.c.idx).where(ledger_refs.c.ref == ref).scalar_subquery())


_FIND_REF = select(ref_index(bindparam("ref")))
_HEAD_QUERY = select(ledger_head.c.size, ledger_head.c.frontier, ledger_head.c.note).where(ledger_head.c.id == HEAD_ID)
_HEAD_QUERY_LOCKED = _HEAD_QUERY.with_for_update()


def _text_matches(stored: StoredEntry, kind: str, subject_prefix: str) -> bool:
    try:
        entry = stored.parse()
    except InvalidInput:
        return False
    return entry.kind == kind and entry.subject.startswith(subject_prefix) and entry.index == stored.index


MAX_CLOCK_STEP_S = 5.0
"""How far ahead of this clock a previous entry's time may be and still be a floor for the next entry's."""


def _time_of(text: str | bytes) -> str:
    """The ``time`` of a canonical entry text (its last field), or "" when it has none."""
    raw = text.encode() if isinstance(text, str) else bytes(text)
    at = raw.rfind(b',"time":"')
    return raw[at + 9 : -2].decode() if at >= 0 and raw.endswith(b'"}') else ""


def _later(time: str, seconds: float) -> str:
    """``time`` (entry format) plus ``seconds``, in the same format."""
    moment = datetime.strptime(time, "%Y-%m-%dT%H:%M:%S.%fZ") + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _db_error(action: str, exc: SQLAlchemyError) -> LedgerUnavailable:
    return LedgerUnavailable(f"ledger could not {action}: {describe_db_error(exc)}")


def initialise(conn: Connection, signer: NoteSigner) -> bool:
    """Create the empty ledger head (signed size 0) unless it exists; True when created."""
    if conn.execute(select(ledger_head.c.id)).first() is not None:
        return False
    note = Checkpoint(signer.name, 0, Frontier().root()).sign(signer)
    conn.execute(insert(ledger_head).values(id=HEAD_ID, size=0, frontier=b"", note=note))
    return True


def _finished(batch: list[Appendable]) -> list[Appendable | Exception]:
    """The group commit's prepare stage: every pending entry of ``batch`` finished (sealed) or refused, in one pass."""
    return [*finish_entries(batch)]


def _has_pending(entries: Sequence[Appendable]) -> bool:
    """Whether a request holds an entry to finish (then the next batch is worth preparing early)."""
    return any(isinstance(entry, PendingEntry) for entry in entries)


def _render(
    batch: Sequence[PreparedEntry],
    frontier: Frontier,
    time: str,
    entry_rows: list[EntryRow],
    node_rows: list[tuple[int, int, bytes]],
    ref_rows: list[tuple[str, int]],
    payload_rows: list[tuple[Any, ...]],
) -> list[Receipt]:
    """Give each entry the next index; append its row and completed subtrees to the lists."""
    receipts: list[Receipt] = []
    sha = hashlib.sha256
    for item in batch:
        index = frontier.size
        text = item.render(index, time)
        lh = sha(b"\x00" + text).digest()
        entry_rows.append(
            (index, lh, item.kind, item.subject, text.decode(), item.principal, time, item.decision, item.status)
        )
        node_rows.extend(frontier.append(lh))
        ref_rows.extend((ref, index) for ref in item.refs)
        if item.attachments:
            payload_rows.extend((*row, index) for row in item.attachments)
        receipts.append(Receipt(index, lh))
    return receipts


class LedgerTransaction:
    """Ledger appends inside a caller's write transaction (see :meth:`Log.transaction`)."""

    def __init__(self, log: Log, conn: Connection) -> None:
        self.log = log
        self.conn = conn
        self._frontier: Frontier | None = None
        self._entries: list[EntryRow] = []
        self._nodes: list[tuple[int, int, bytes]] = []
        self._refs: list[tuple[str, int]] = []
        self._payloads: list[tuple[Any, ...]] = []
        self._time = ""
        self.committed_head: tuple[str, int] | None = None

    def append(
        self, *, kind: str, subject: str, body: dict[str, Any], principal: str, refs: tuple[str, ...] = ()
    ) -> Receipt:
        """Stage one entry; it commits with the transaction."""
        return self.append_prepared(
            PreparedEntry.build(kind=kind, subject=subject, principal=principal, body=body, refs=refs)
        )

    def append_prepared(self, prepared: PreparedEntry) -> Receipt:
        """Stage one prepared entry (with its attachments); it commits with the transaction."""
        if self._frontier is None:
            size, frontier_bytes, _note = self.log._read_head(self.conn, lock=True)
            self.log._check_not_rolled_back(size)
            self._frontier = Frontier.from_bytes(size, frontier_bytes)
            qmark = self.conn.dialect.paramstyle == "qmark"
            read = lambda i: self.conn.exec_driver_sql(_insert_sql("read_entry", qmark), (i,)).first()  # noqa: E731
            self._time = self.log._entry_time(size, read)
        time = max(self._time, utc_now()) if self._entries else self._time
        self._time = time
        receipt = _render([prepared], self._frontier, time, self._entries, self._nodes, self._refs, self._payloads)[0]
        self.log._last_time = (self._frontier.size, time)
        return receipt

    def flush(self) -> None:
        """Write the staged entries and the newly signed head (called before COMMIT)."""
        if self._frontier is None:
            return
        qmark = self.conn.dialect.paramstyle == "qmark"
        frontier = self._frontier
        note = Checkpoint(self.log.origin, frontier.size, frontier.root()).sign(self.log._signer)
        self.conn.exec_driver_sql(_insert_sql("entries", qmark), self._entries)
        self.conn.exec_driver_sql(_insert_sql("nodes", qmark), self._nodes)
        if self._refs:
            self.conn.exec_driver_sql(_insert_sql("refs", qmark), self._refs)
        if self._payloads:
            self.conn.exec_driver_sql(_insert_sql("payloads", qmark), self._payloads)
        self.conn.exec_driver_sql(_insert_sql("head", qmark), (frontier.size, frontier.to_bytes(), note, HEAD_ID))
        self.committed_head = (note, frontier.size)


class Log:
    """The ledger of one workspace. Thread-safe; many processes may share one database."""

    def __init__(
        self,
        engine: Engine,
        signer: NoteSigner,
        *,
        publish_dir: Path | None = None,
        sign_interval: float = SIGN_INTERVAL_S,
    ) -> None:
        self._engine = engine
        self.sign_interval = sign_interval
        """Seconds between two signatures of the head by group commits (0: sign every commit)."""
        self._signed_at = -float("inf")
        self._unsigned = False
        self._signer = signer
        self._verifier = signer.verifier()
        self._publish_dir = publish_dir
        self._seen_size = 0
        self._last_time: tuple[int, str] | None = None
        """``(size, time)``: the time of entry ``size - 1`` as this process wrote it (a floor for the next)."""
        self._seen_lock = threading.Lock()
        self._published_at = -PUBLISH_INTERVAL_S
        self._pending_head: tuple[str, int] | None = None
        self._writer: Any = None
        self._write_lock = WriterLock.for_engine(engine)
        self._wal_autocheckpoint = True
        self._checkpointer: threading.Thread | None = None
        self._entry_rows: list[EntryRow] = []
        self._node_rows: list[tuple[int, int, bytes]] = []
        self._ref_rows: list[tuple[str, int]] = []
        self._payload_rows: list[tuple[Any, ...]] = []
        self._committer: GroupCommit[Appendable, Receipt] = GroupCommit(
            self._write_batch, prepare=_finished, needs_prepare=_has_pending
        )

    @property
    def origin(self) -> str:
        """The log's origin line (also its key name)."""
        return self._signer.name

    @property
    def verifier(self) -> NoteVerifier:
        """The key that verifies this log's checkpoints."""
        return self._verifier

    # ------------------------------------------------------------------ appends
    def append(
        self, *, kind: str, subject: str, body: dict[str, Any], principal: str, refs: tuple[str, ...] = ()
    ) -> Receipt:
        """Record one entry; returns once it is durable. ``refs`` (e.g. decision ids) find it later."""
        prepared = PreparedEntry.build(kind=kind, subject=subject, principal=principal, body=body, refs=refs)
        return self._committer.submit([prepared])[0]

    @property
    def write_lock(self) -> WriterLock:
        """The lock this process's ledger writes hold around their transaction (a thread lock, and ``flock`` on SQLite).

        A short write that may run beside a group commit's (the prepare stage creating keys of the
        day while the previous batch commits) takes it first, in the ledger's own order: it then
        waits for that commit, instead of polling SQLite's busy handler against its lock timeout.
        """
        return self._write_lock

    @property
    def queued_appends(self) -> int:
        """Append requests of this process waiting for the next group commit."""
        return self._committer.queued

    def find_ref(self, ref: str) -> int | None:
        """The index of the entry recorded with reference ``ref`` (see :func:`ref_index`: callers check the entry)."""
        try:
            with self._engine.connect() as conn:
                row = conn.execute(_FIND_REF, {"ref": ref}).first()
        except SQLAlchemyError as exc:
            raise _db_error("look up the reference", exc) from exc
        return None if row is None or row[0] is None else int(row[0])

    def append_many(self, entries: Sequence[Appendable]) -> list[Receipt]:
        """Record several entries atomically: all are durable, or none is written.

        A :class:`~mlwarden.ledger.entry.PendingEntry` is finished by the group commit's leader,
        together with the other pending entries of its batch, before the batch's transaction.
        """
        if not entries:
            return []
        return self._committer.submit(list(entries))

    def _writer_connection(self) -> Any:
        """The DBAPI connection the group-commit leader writes with (one leader at a time)."""
        if self._writer is None:
            self._writer = self._engine.raw_connection()
            if not self._wal_autocheckpoint and self._engine.dialect.name == "sqlite":
                self._writer.driver_connection.execute("PRAGMA wal_autocheckpoint=0")
        return self._writer

    def checkpoint_wal_in_background(self, interval: float = 0.5) -> None:
        """Move SQLite WAL checkpoints off the commit path (a long-running writer calls this once).

        By default the committing connection checkpoints every 1,000 WAL pages, which stalls
        that commit for the whole write-back; here a daemon thread runs PASSIVE checkpoints,
        which never block writers.
        """
        if self._engine.dialect.name != "sqlite" or self._checkpointer is not None:
            return
        self._wal_autocheckpoint = False
        self._drop_writer()

        def run() -> None:
            while True:
                time.sleep(interval)
                try:
                    conn: Any = self._engine.raw_connection()
                    try:
                        conn.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    finally:
                        conn.close()
                except Exception:  # noqa: S112 - a missed checkpoint is retried next round
                    continue

        self._checkpointer = threading.Thread(target=run, name="mlwarden-wal-checkpoint", daemon=True)
        self._checkpointer.start()

    def _drop_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):  # the connection is being thrown away; its errors do not matter
                writer.invalidate()

    def _write_batch(self, appended: list[Appendable]) -> list[Receipt]:
        # Pending entries were finished by the group commit's prepare stage (:func:`_finished`:
        # a finisher may need its own short transaction, e.g. to create the keys of the day, so
        # it runs before this one; a failure there writes nothing): nothing is finished twice.
        batch = [entry for entry in appended if isinstance(entry, PreparedEntry)]
        if len(batch) != len(appended):
            raise RuntimeError("the group commit handed its writer an entry its prepare stage did not finish")
        # The hot path talks to the driver directly: no pool checkout, no statement
        # compiling, one BEGIN ... COMMIT. Everything else goes through SQLAlchemy.
        dbapi_error: type[Exception] = self._engine.dialect.loaded_dbapi.Error
        qmark = self._engine.dialect.paramstyle == "qmark"
        try:
            self._write_lock.__enter__()
        except OSError as exc:
            raise LedgerUnavailable(f"ledger could not take its write lock: {exc.strerror}") from exc
        try:
            conn = self._writer_connection()
            cur = conn.cursor()
            try:
                if qmark:
                    cur.execute("BEGIN IMMEDIATE")
                cur.execute(_insert_sql("read_head", qmark) + ("" if qmark else " FOR UPDATE"), (HEAD_ID,))
                head = cur.fetchone()
                if head is None:
                    raise IntegrityError("ledger head is missing", index=0, problem="missing")
                now = _monotonic()
                sign = now - self._signed_at >= self.sign_interval
                read = lambda i: (cur.execute(_insert_sql("read_entry", qmark), (i,)), cur.fetchone())[1]  # noqa: E731
                time = self._entry_time(int(head[0]), read)
                receipts, note, frontier = self._stage(batch, int(head[0]), bytes(head[1]), sign=sign, time=time)
                cur.executemany(_insert_sql("entries", qmark), self._entry_rows)
                cur.executemany(_insert_sql("nodes", qmark), self._node_rows)
                if self._ref_rows:
                    cur.executemany(_insert_sql("refs", qmark), self._ref_rows)
                if self._payload_rows:
                    cur.executemany(_insert_sql("payloads", qmark), self._payload_rows)
                if note is None:
                    cur.execute(_insert_sql("head_unsigned", qmark), (frontier.size, frontier.to_bytes(), HEAD_ID))
                else:
                    cur.execute(_insert_sql("head", qmark), (frontier.size, frontier.to_bytes(), note, HEAD_ID))
                self._committer.overlap()  # the next batch is prepared while this one waits on the disk
                conn.commit()
            except BaseException:
                try:
                    conn.rollback()
                except dbapi_error:
                    self._drop_writer()
                raise
            finally:
                self._entry_rows, self._node_rows, self._ref_rows, self._payload_rows = [], [], [], []
                cur.close()
        except (dbapi_error, SQLAlchemyError) as exc:
            self._drop_writer()
            raise LedgerUnavailable(f"ledger could not record the entry: {describe_db_error(exc)}") from exc
        finally:
            self._write_lock.__exit__(None, None, None)
        self._saw_size(frontier.size)
        self._after_commit(note, frontier.size, now)
        return receipts

    def _entry_time(self, size: int, read_entry: Callable[[int], Any]) -> str:
        """The time for entries appended at ``size``: now, or the previous entry's time if the clock is behind it.

        Entry times never decrease along the log (audit queries turn a time range into an index
        range), but a previous time more than :data:`MAX_CLOCK_STEP_S` ahead is not followed: a
        rewritten entry cannot push every later time into the future.
        """
        now = utc_now()
        if size == 0:
            return now
        if self._last_time is not None and self._last_time[0] == size:
            floor = self._last_time[1]
        else:
            row = read_entry(size - 1)
            floor = _time_of(row[0]) if row is not None else ""
        return floor if now < floor <= _later(now, MAX_CLOCK_STEP_S) else now

    def _stage(
        self, batch: list[PreparedEntry], size: int, frontier_bytes: bytes, *, sign: bool, time: str
    ) -> tuple[list[Receipt], str | None, Frontier]:
        """Assign indices, render, hash (and sign when due); the rows land in ``_entry_rows``/``_node_rows``."""
        self._check_not_rolled_back(size)
        frontier = Frontier.from_bytes(size, frontier_bytes)
        receipts = _render(batch, frontier, time, self._entry_rows, self._node_rows, self._ref_rows, self._payload_rows)
        self._last_time = (frontier.size, time)
        note = Checkpoint(self.origin, frontier.size, frontier.root()).sign(self._signer) if sign else None
        return receipts, note, frontier

    def _after_commit(self, note: str | None, size: int, now: float) -> None:
        """Remember whether the head this process committed is signed; publish it when it is."""
        if note is None:
            self._unsigned = True
            return
        self._signed_at = now
        self._unsigned = False
        self._maybe_publish_head(note, size)

    @property
    def unsigned(self) -> bool:
        """Whether this process committed entries that its last signature does not cover."""
        return self._unsigned

    def sign_head(self, covering: int | None = None) -> str:
        """The signed head note, covering at least ``covering`` entries (default: the whole head).

        When the stored note lags (group commits sign once per ``sign_interval``), the head is
        signed now, once, under the write lock: its frontier must match the stored subtrees and,
        at the note's size, the root the note signed. Returns the note.
        """
        try:
            with self._engine.connect() as conn:
                size, _frontier, note = self._read_head(conn)
            current = self._open_note(note, "the signed head")
            if current.size >= (size if covering is None else min(covering, size)):
                return note
            with self._write_lock, write_transaction(self._engine) as conn:
                note, size = self._sign_locked(conn)
        except SQLAlchemyError as exc:
            raise _db_error("sign its head", exc) from exc
        except OSError as exc:
            raise LedgerUnavailable(f"ledger could not take its write lock: {exc.strerror}") from exc
        self._saw_size(size)
        self._after_commit(note, size, _monotonic())
        return note

    def signed_note_for(self, kinds: Collection[str]) -> str:
        """The signed head note, signed afresh first if entries past it include one of ``kinds``.

        The kind column is only a hint for when to sign: whatever it says, every entry is
        covered by the interval's signature within ``sign_interval`` seconds.
        """
        try:
            with self._engine.connect() as conn:
                _size, _frontier, note = self._read_head(conn)
                signed = self._open_note(note, "the signed head").size
                pending = conn.execute(
                    select(ledger_entries.c.idx)
                    .where(ledger_entries.c.idx >= signed, ledger_entries.c.kind.in_(sorted(kinds)))
                    .limit(1)
                ).first()
        except SQLAlchemyError as exc:
            raise _db_error("read its head", exc) from exc
        return note if pending is None else self.sign_head(int(pending[0]) + 1)

    def _sign_locked(self, conn: Connection) -> tuple[str, int]:
        """Sign the head read under the write lock (unless someone signed it meanwhile)."""
        size, frontier_bytes, note = self._read_head(conn, lock=True)
        current = self._open_note(note, "the signed head")
        if current.size >= size:
            return note, size
        frontier = Frontier.from_bytes(size, frontier_bytes)
        self._check_frontier(conn, size, frontier)
        self._check_against(conn, current, size, "signed head")
        note = Checkpoint(self.origin, size, frontier.root()).sign(self._signer)
        qmark = conn.dialect.paramstyle == "qmark"
        conn.exec_driver_sql(_insert_sql("head", qmark), (size, frontier.to_bytes(), note, HEAD_ID))
        return note, size

    def _check_frontier(self, conn: Connection, size: int, frontier: Frontier) -> None:
        stored = self._fetch_nodes(conn, set(root_nodes(size)))
        if [stored[n] for n in root_nodes(size)] != frontier.hashes:
            raise IntegrityError("ledger frontier does not match the stored subtrees", index=None, problem="changed")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[LedgerTransaction]:
        """A database transaction in which state changes and their ledger entries commit together.

        ``with log.transaction() as tx: tx.conn.execute(...); tx.append(...)`` — either the
        change and its entries are both durable when the block ends, or neither is.
        """
        tx: LedgerTransaction | None = None
        try:
            with self._write_lock, write_transaction(self._engine) as conn:
                tx = LedgerTransaction(self, conn)
                yield tx
                tx.flush()
        except SQLAlchemyError as exc:
            raise _db_error("record the change", exc) from exc
        if tx is not None and tx.committed_head is not None:
            note, size = tx.committed_head
            self._saw_size(size)
            self._after_commit(note, size, _monotonic())

    def _maybe_publish_head(self, note: str, size: int) -> None:
        """Publish the head outside the database, at most every ``PUBLISH_INTERVAL_S`` seconds."""
        now = _monotonic()
        with self._seen_lock:
            self._pending_head = (note, size)
            if now - self._published_at < PUBLISH_INTERVAL_S:
                return
            self._published_at = now
        self._publish(LATEST_FILE, note, size)

    def close(self) -> None:
        """Sign the head if this process left it unsigned, publish the newest head, release the connection."""
        try:
            if self._unsigned:
                with contextlib.suppress(MlwardenError):  # closing after a failure: the next writer signs
                    self.sign_head()
            self.publish_head()
        finally:
            writer, self._writer = self._writer, None
            if writer is not None:
                writer.close()

    def publish_head(self) -> None:
        """Publish the newest head this process wrote (called when a workspace closes)."""
        with self._seen_lock:
            pending, self._pending_head = self._pending_head, None
        if pending is not None:
            self._publish(LATEST_FILE, *pending)

    # ------------------------------------------------------------------ head and checks
    def _read_head(self, conn: Connection, *, lock: bool = False) -> tuple[int, bytes, str]:
        query = _HEAD_QUERY_LOCKED if lock and conn.dialect.name != "sqlite" else _HEAD_QUERY
        row = conn.execute(query).first()
        if row is None:
            raise IntegrityError(
                "ledger head is missing: the database was not initialised or was emptied", index=0, problem="missing"
            )
        return int(row.size), bytes(row.frontier), str(row.note)

    def _check_not_rolled_back(self, size: int) -> None:
        if size < self._seen_size:
            raise IntegrityError(
                f"ledger went backwards: this process saw {self._seen_size} entries, the database now has {size}",
                index=size,
                problem="rolled back",
            )

    def _saw_size(self, size: int) -> None:
        with self._seen_lock:
            self._seen_size = max(self._seen_size, size)

    def check_head(self) -> Checkpoint:
        """Check the stored head against its signature, its stored subtrees and every known checkpoint.

        The signed note may lag the head (group commits sign once per interval), but it must be
        consistent with it: a size no larger than the head's, and at that size the root the
        stored tree gives. Run when a log is opened for writing; raises :class:`IntegrityError`.

        Published and stored checkpoints are read *before* the head: a sibling writer that
        commits and publishes in between can only make the head larger than what was read,
        never a published checkpoint look newer than the head (a false "rolled back").
        """
        try:
            known = list(self._known_checkpoints())
            with self._engine.connect() as conn:
                size, frontier_bytes, note = self._read_head(conn)
                head = self._open_note(note, "the signed head")
                frontier = Frontier.from_bytes(size, frontier_bytes)
                if head.size > size:
                    raise IntegrityError(
                        f"ledger has {size} entries but its signed head covers {head.size}: "
                        "entries were removed or the database was rolled back",
                        index=size,
                        problem="rolled back",
                    )
                if head.size == size and head.root != frontier.root():
                    raise IntegrityError(
                        f"ledger head (size {size}) does not match its signed checkpoint (size {head.size})",
                        index=size,
                        problem="changed",
                    )
                self._check_frontier(conn, size, frontier)
                self._check_against(conn, head, size, "signed head")
                for label, cp in known:
                    self._check_against(conn, cp, size, label)
        except SQLAlchemyError as exc:
            raise _db_error("read its head", exc) from exc
        self._saw_size(size)
        return head

    def _known_checkpoints(self) -> Iterator[tuple[str, Checkpoint]]:
        try:
            with self._engine.connect() as conn:
                row = conn.execute(
                    select(ledger_checkpoints.c.size, ledger_checkpoints.c.note)
                    .order_by(ledger_checkpoints.c.size.desc())
                    .limit(1)
                ).first()
        except SQLAlchemyError as exc:
            raise _db_error("read checkpoints", exc) from exc
        if row is not None:
            yield (
                f"stored checkpoint at size {row.size}",
                self._open_note(row.note, f"stored checkpoint at size {row.size}"),
            )
        files = self.published_files()
        newest = [p for p in files if p.name == LATEST_FILE] + [p for p in files if p.name != LATEST_FILE][-1:]
        for path in newest:
            yield f"published checkpoint {path.name}", self._open_note(_read_note(path), f"published checkpoint {path}")

    def _check_against(self, conn: Connection, cp: Checkpoint, size: int, label: str) -> None:
        if cp.size > size:
            raise IntegrityError(
                f"ledger has {size} entries but the {label} covers {cp.size}: "
                "entries were removed or the database was rolled back",
                index=size,
                problem="rolled back",
            )
        if cp.size and self._root_at(conn, cp.size) != cp.root:
            raise IntegrityError(f"ledger is not consistent with the {label}", index=None, problem="changed")

    def _open_note(self, note: str, label: str) -> Checkpoint:
        try:
            return Checkpoint.open(note, self._verifier)
        except VerificationError as exc:
            raise IntegrityError(f"{label}: {exc}", index=None, problem="bad signature") from exc

    # ------------------------------------------------------------------ reading
    def size(self) -> int:
        """The number of entries."""
        try:
            with self._engine.connect() as conn:
                return self._read_head(conn)[0]
        except SQLAlchemyError as exc:
            raise _db_error("read its size", exc) from exc

    def head_note(self) -> str:
        """The signed checkpoint note of the current head."""
        try:
            with self._engine.connect() as conn:
                return self._read_head(conn)[2]
        except SQLAlchemyError as exc:
            raise _db_error("read its head", exc) from exc

    def _fetch_nodes(self, conn: Connection, needed: set[Node]) -> dict[Node, bytes]:
        if not needed:
            return {}
        ordered = sorted(needed)
        sql = _nodes_sql(len(ordered), conn.dialect.paramstyle == "qmark")
        rows = conn.exec_driver_sql(sql, tuple(x for node in ordered for x in node)).all()
        found = {(int(r[0]), int(r[1])): bytes(r[2]) for r in rows}
        missing = needed - found.keys()
        if missing:
            level, idx = min(missing, key=lambda n: n[1] << n[0])
            raise IntegrityError(
                f"stored subtree (level {level}, index {idx}) is missing", index=idx << level, problem="missing"
            )
        return found

    def _root_at(self, conn: Connection, size: int) -> bytes:
        nodes = root_nodes(size)
        found = self._fetch_nodes(conn, set(nodes))
        return fold_frontier([found[n] for n in nodes])

    def _resolve_size(self, conn: Connection, size: int | None) -> int:
        head = self._read_head(conn)[0]
        if size is None:
            return head
        if not 0 <= size <= head:
            raise InvalidInput(f"tree size {size} is outside the log (size {head})")
        return size

    def inclusion_proof(self, index: int, size: int | None = None) -> InclusionProof:
        """Prove entry ``index`` is in the tree of ``size`` (default: the whole log)."""
        try:
            with self._engine.connect() as conn:
                tree_size = self._resolve_size(conn, size)
                if not 0 <= index < tree_size:
                    raise NotFound(f"entry {index} is not in a tree of size {tree_size}")
                ranges = inclusion_ranges(index, tree_size)
                found = self._fetch_nodes(conn, proof_nodes(ranges) | set(root_nodes(tree_size)) | {(0, index)})
        except SQLAlchemyError as exc:
            raise _db_error("build the proof", exc) from exc
        path = [range_hash(lo, hi, lambda lv, ix: found[(lv, ix)]) for lo, hi in ranges]
        root = fold_frontier([found[n] for n in root_nodes(tree_size)])
        proof = InclusionProof(index, tree_size, found[(0, index)], root, path)
        try:
            verify_inclusion(proof.leaf_hash, index, tree_size, path, root)
        except VerificationError as exc:
            raise IntegrityError(f"stored hashes give a failing proof for entry {index}: {exc}", index=index) from exc
        return proof

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> ConsistencyProof:
        """Prove the tree of ``old_size`` is a prefix of the tree of ``new_size``."""
        try:
            with self._engine.connect() as conn:
                new = self._resolve_size(conn, new_size)
                if not 0 <= old_size <= new:
                    raise InvalidInput(f"consistency needs 0 <= old <= new, got old={old_size} new={new}")
                ranges = consistency_ranges(old_size, new)
                needed = proof_nodes(ranges) | set(root_nodes(old_size)) | set(root_nodes(new))
                found = self._fetch_nodes(conn, needed)
        except SQLAlchemyError as exc:
            raise _db_error("build the proof", exc) from exc
        path = [range_hash(lo, hi, lambda lv, ix: found[(lv, ix)]) for lo, hi in ranges]
        old_root = fold_frontier([found[n] for n in root_nodes(old_size)])
        new_root = fold_frontier([found[n] for n in root_nodes(new)])
        try:
            verify_consistency(old_size, new, old_root, new_root, path)
        except VerificationError as exc:
            raise IntegrityError(f"stored hashes give a failing consistency proof: {exc}") from exc
        return ConsistencyProof(old_size, new, old_root, new_root, path)

    def entry(self, index: int) -> StoredEntry:
        """One stored entry."""
        try:
            with self._engine.connect() as conn:
                row = conn.execute(
                    select(ledger_entries.c.idx, ledger_entries.c.leaf_hash, ledger_entries.c.entry).where(
                        ledger_entries.c.idx == index
                    )
                ).first()
        except SQLAlchemyError as exc:
            raise _db_error("read the entry", exc) from exc
        if row is None:
            raise NotFound(f"ledger entry {index} does not exist")
        return StoredEntry(int(row[0]), bytes(row[1]), str(row[2]))

    def verified_entry(self, index: int) -> tuple[Entry, InclusionProof]:
        """Entry ``index``, proven: its text hashes to a leaf that the signed head includes.

        The stored leaf hash, subtree hashes and columns are not trusted; only the text
        and the Ed25519-signed head are. Raises :class:`IntegrityError` when they disagree.
        """
        head = self._open_note(self.head_note(), "the signed head")
        if index >= head.size:  # committed after the last interval signature: sign the head now
            head = self._open_note(self.sign_head(index + 1), "the signed head")
        stored = self.entry(index)
        text = stored.text.encode()
        leaf = hashlib.sha256(b"\x00" + text).digest()
        if index >= head.size:
            raise NotFound(f"entry {index} is not covered by the signed head (size {head.size})")
        proof = self.inclusion_proof(index, head.size)
        try:
            verify_inclusion(leaf, index, head.size, proof.path, head.root)
        except VerificationError as exc:
            raise IntegrityError(f"ledger entry {index} does not verify against the signed head: {exc}",
                                 index=index) from exc  # fmt: skip
        try:
            entry = Entry.parse(text)
        except InvalidInput as exc:
            raise IntegrityError(f"ledger entry {index} is not an entry: {exc.message}", index=index) from exc
        if entry.index != index:
            raise IntegrityError(f"ledger entry {index} says it is entry {entry.index}", index=index)
        return entry, InclusionProof(index, head.size, leaf, head.root, proof.path)

    def find(self, kind: str, subject_prefix: str, *, limit: int = 100) -> list[StoredEntry]:
        """Entries of ``kind`` whose subject starts with ``subject_prefix``, newest first."""
        escaped = subject_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(
                    select(ledger_entries.c.idx, ledger_entries.c.leaf_hash, ledger_entries.c.entry)
                    .where(ledger_entries.c.kind == kind, ledger_entries.c.subject.like(escaped + "%", escape="\\"))
                    .order_by(ledger_entries.c.idx.desc())
                    .limit(limit)
                ).all()
        except SQLAlchemyError as exc:
            raise _db_error("read entries", exc) from exc
        found = [StoredEntry(int(r[0]), bytes(r[1]), str(r[2])) for r in rows]
        # The columns are only an index: keep the entries whose own text says so.
        return [e for e in found if _text_matches(e, kind, subject_prefix)]

    def tail(self, count: int) -> list[StoredEntry]:
        """The latest ``count`` entries, oldest first."""
        if count < 0:
            raise InvalidInput("tail count must be zero or more")
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(
                    select(ledger_entries.c.idx, ledger_entries.c.leaf_hash, ledger_entries.c.entry)
                    .order_by(ledger_entries.c.idx.desc())
                    .limit(count)
                ).all()
        except SQLAlchemyError as exc:
            raise _db_error("read entries", exc) from exc
        return [StoredEntry(int(r[0]), bytes(r[1]), str(r[2])) for r in reversed(rows)]

    def iter_rows(self, start: int = 0, stop: int | None = None, *, chunk: int = 10_000) -> Iterator[Row]:
        """Stream ``(index, entry bytes, stored leaf hash)`` in index order, as stored.

        Reads through the driver with one streaming cursor and asks the database for the
        entry's UTF-8 bytes, so verification and export never decode and re-encode text.
        """
        yield from stream_rows(self._engine, start, stop, chunk=chunk)

    def stored_leaves(self, start: int, stop: int) -> dict[int, bytes]:
        """Level-0 subtree hashes in ``[start, stop)``, to locate a rewritten entry."""
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(
                    select(ledger_nodes.c.idx, ledger_nodes.c.hash).where(
                        ledger_nodes.c.level == 0, ledger_nodes.c.idx >= start, ledger_nodes.c.idx < stop
                    )
                ).all()
        except SQLAlchemyError as exc:
            raise _db_error("read subtree hashes", exc) from exc
        return {int(r[0]): bytes(r[1]) for r in rows}

    def stored_checkpoints(self) -> list[tuple[int, str]]:
        """Every checkpoint stored on purpose, ``(size, note)``, oldest first."""
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(
                    select(ledger_checkpoints.c.size, ledger_checkpoints.c.note).order_by(ledger_checkpoints.c.size)
                ).all()
        except SQLAlchemyError as exc:
            raise _db_error("read checkpoints", exc) from exc
        return [(int(r[0]), str(r[1])) for r in rows]

    # ------------------------------------------------------------------ verification
    def checkpoint_sources(self) -> list[CheckpointSource]:
        """Every signed note that vouches for this log: the head, stored and published checkpoints."""
        sources = [CheckpointSource(self.head_note(), "the signed head")]
        sources += [
            CheckpointSource(note, f"stored checkpoint at size {size}") for size, note in self.stored_checkpoints()
        ]
        for path in self.published_files():
            sources.append(CheckpointSource(_read_note(path), f"published checkpoint {path.name}", external=True))
        return sources

    def verify(
        self, extra: Sequence[CheckpointSource] = (), *, parallel: bool | None = None, chunk: int = CHUNK
    ) -> VerifyReport:
        """Recompute the whole log from its entry texts and check it against every checkpoint.

        Large logs are scanned by worker processes in aligned chunks (``parallel=None``
        decides by size; True or False forces it).
        """
        try:
            sources = [*self.checkpoint_sources(), *extra]
            head_size = self.size()
        except IntegrityError as exc:
            return VerifyReport(finding=Finding(exc.index, exc.problem, exc.message))
        workers = worker_count()
        if parallel is None:
            parallel = workers > 1 and head_size >= MIN_ENTRIES
        scanner: Scanner
        if parallel:
            target = DriverTarget.from_engine(self._engine)
            scanner = lambda stops: parallel_scans(target, head_size, stops, workers=workers, chunk=chunk)  # noqa: E731
        else:
            scanner = lambda stops: [scan_chunk(self.iter_rows(), 0, None, stops)]  # noqa: E731
        report = verify_scanned(
            scanner,
            sources,
            self._verifier,
            stored_leaves=self.stored_leaves,
            rows_from=lambda lo, hi: self.iter_rows(lo, hi),
            expected_size=head_size,
        )
        return report

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self) -> str:
        """Store and publish a signed checkpoint of the current head; return the note."""
        self.check_head()
        try:  # signed now if the note lags: a checkpoint taken on purpose covers every committed entry
            with self._write_lock, write_transaction(self._engine) as conn:
                note, size = self._sign_locked(conn)
                exists = conn.execute(
                    select(ledger_checkpoints.c.size).where(ledger_checkpoints.c.size == size)
                ).first()
                if exists is None:
                    conn.execute(insert(ledger_checkpoints).values(size=size, note=note, created=utc_now()))
        except SQLAlchemyError as exc:
            raise _db_error("store the checkpoint", exc) from exc
        except OSError as exc:
            raise LedgerUnavailable(f"ledger could not take its write lock: {exc.strerror}") from exc
        self._saw_size(size)
        self._after_commit(note, size, _monotonic())
        self._publish(f"checkpoint-{size:012d}.txt", note, size)
        return note

    def published_files(self) -> list[Path]:
        """Checkpoint files published outside the database."""
        if self._publish_dir is None or not self._publish_dir.is_dir():
            return []
        return sorted(p for p in self._publish_dir.iterdir() if p.suffix == ".txt")

    def _publish(self, name: str, note: str, size: int) -> None:
        if self._publish_dir is None:
            return
        target = self._publish_dir / name
        try:
            if name == LATEST_FILE and target.exists():
                try:
                    current = Checkpoint.parse_text(_read_note(target).split("\n\n", 1)[0] + "\n")
                    if current.size > size:
                        return
                except MlwardenError:
                    pass
            self._publish_dir.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{name}.{os.getpid()}.{threading.get_ident()}.tmp")
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as out:
                out.write(note)
            os.replace(tmp, target)
        except OSError:
            # Publication is a second copy; the committed entry and stored head stand without it.
            return


def _read_note(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")[:65536]
    except (OSError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"published checkpoint {path} cannot be read: {exc}", problem="bad signature") from exc
