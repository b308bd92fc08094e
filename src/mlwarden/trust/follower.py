"""Keep a :class:`TrustedState` in step with the ledger, proving every entry it folds.

Each refresh reads the signed head (size S, root), folds the entries it has not seen
yet, recomputes the tree's right edge from their texts and compares the root with the
signed root at S. Nothing that was not proven enters the state, so a database writer
cannot add, hide or alter a token, an approval or a stage: changing an entry's text
breaks the root, and changing its ``kind`` or ``subject`` column changes nothing here,
because only the text is read. Snapshots (signed with the workspace key) spare a fold
from the first entry; a stale snapshot only means more entries to fold.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import SQLAlchemyError

from mlwarden.errors import ArtifactIntegrityError, IntegrityError, InvalidInput, LedgerUnavailable
from mlwarden.ledger.canonical import canonical_json
from mlwarden.ledger.entry import Entry, embedded_index
from mlwarden.ledger.notes import Checkpoint, NoteSigner
from mlwarden.ledger.ranges import Frontier
from mlwarden.registry.attest import check_claims, sign_claims
from mlwarden.store.rows import stream_rows
from mlwarden.store.schema import ledger_head, meta
from mlwarden.trust.projection import STATE_KINDS, TrustedState
from mlwarden.workspace import Workspace

log = structlog.get_logger("mlwarden.trust")
SNAPSHOT_KEY = "trusted_state"
SNAPSHOT_EVERY = 20_000
_KIND_MARK = b',"kind":"'
_INDEX_MARK = b',"index":'


def entry_kind(text: bytes) -> str | None:
    """The top-level ``kind`` of canonical entry bytes, read without a full parse.

    In canonical JSON the body is the only key before ``index``, quotes inside strings are
    escaped and kinds hold no quote, so the kind follows the last ``,"index":N``.
    """
    at = text.rfind(_INDEX_MARK)
    if at < 0:
        return None
    start = text.find(_KIND_MARK, at)
    if start < 0:
        return None
    start += len(_KIND_MARK)
    end = text.find(b'"', start)
    return text[start:end].decode() if end > 0 else None


class StateFollower:
    """One per workspace and process: the state, refreshed on demand or by a background thread."""

    def __init__(
        self,
        engine: Engine,
        signer: NoteSigner,
        *,
        use_snapshot: bool = True,
        sign_head: Callable[[], str] | None = None,
    ) -> None:
        self._use_snapshot = use_snapshot
        self._sign_head = sign_head
        self._engine = engine
        self._signer = signer
        self._verifier = signer.verifier()
        self._lock = threading.Lock()
        self._state: TrustedState | None = None
        self._frontier = Frontier()
        self._refreshed = 0.0
        self._snapshot_size = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ reading
    def state(self, max_age: float = 0.0) -> TrustedState:
        """The state, refreshed first when it is older than ``max_age`` seconds."""
        state = self._state
        if state is not None and time.monotonic() - self._refreshed <= max_age:
            return state
        return self.refresh()

    def refresh(self) -> TrustedState:
        """Fold every entry up to the signed head; raise :class:`IntegrityError` if they do not prove it."""
        with self._lock:
            started = time.monotonic()
            if self._state is None:
                self._state, self._frontier = self._load_snapshot()
                self._snapshot_size = self._state.size
            size, root = self._signed_head()
            state = self._state
            if size < state.size:
                raise IntegrityError(
                    f"ledger head (size {size}) is behind the verified state (size {state.size})",
                    index=size,
                    problem="rolled back",
                )
            if size > state.size:
                state, frontier = self._fold(state, self._frontier, size, root)
                self._state, self._frontier = state, frontier
            self._refreshed = started
            if self._use_snapshot and state.size - self._snapshot_size >= SNAPSHOT_EVERY:
                self._save_snapshot(state, self._frontier)
            return state

    def _signed_head(self) -> tuple[int, bytes]:
        """The signed head: ``sign_head``'s (which signs a note that lags state changes), or the stored note."""
        if self._sign_head is not None:
            note: object = self._sign_head()
        else:
            try:
                with self._engine.connect() as conn:
                    note = conn.execute(select(ledger_head.c.note)).scalar()
            except SQLAlchemyError as exc:
                raise LedgerUnavailable("ledger could not read its head") from exc
        if note is None:
            raise IntegrityError("ledger head is missing", index=0, problem="missing")
        try:
            checkpoint = Checkpoint.open(str(note), self._verifier)
        except Exception as exc:
            raise IntegrityError(f"the signed head does not verify: {exc}", problem="bad signature") from exc
        return checkpoint.size, checkpoint.root

    def _fold(self, state: TrustedState, frontier: Frontier, size: int, root: bytes) -> tuple[TrustedState, Frontier]:
        """Fold ``[state.size, size)`` into copies; commit them only if the root matches."""
        state = TrustedState.from_json(json.loads(json.dumps(state.to_json())))
        frontier = Frontier(frontier.size, frontier.hashes)
        sha = hashlib.sha256
        expected = state.size
        for index, text, _stored in stream_rows(self._engine, state.size, size):
            if index != expected or embedded_index(text) != index:
                raise IntegrityError(f"ledger entry {expected} is missing or out of order", index=expected)
            frontier.append(sha(b"\x00" + text).digest())
            if entry_kind(text) in STATE_KINDS:
                try:
                    state.apply(Entry.parse(text))
                except InvalidInput as exc:
                    raise IntegrityError(f"ledger entry {index} is not an entry: {exc.message}", index=index) from exc
            expected += 1
        if expected != size:
            raise IntegrityError(f"ledger entry {expected} is missing", index=expected, problem="missing")
        if frontier.root() != root:
            raise IntegrityError(
                f"ledger entries {state.size}..{size - 1} do not hash to the signed head", index=state.size
            )
        state.size = size
        return state, frontier

    # ------------------------------------------------------------------ snapshots
    def _claims(self, state: TrustedState, frontier: Frontier) -> dict[str, Any]:
        return {
            "kind": "trusted-state",
            "origin": self._signer.name,
            "size": state.size,
            "frontier": frontier.to_bytes().hex(),
            "state_sha256": hashlib.sha256(canonical_json(state.to_json())).hexdigest(),
        }

    def _load_snapshot(self) -> tuple[TrustedState, Frontier]:
        if not self._use_snapshot:
            return TrustedState(), Frontier()
        try:
            with self._engine.connect() as conn:
                raw = conn.execute(select(meta.c.value).where(meta.c.key == SNAPSHOT_KEY)).scalar()
        except SQLAlchemyError:
            raw = None
        if raw is None:
            return TrustedState(), Frontier()
        try:
            doc = json.loads(raw)
            state = TrustedState.from_json(doc["state"])
            frontier = Frontier.from_bytes(state.size, bytes.fromhex(doc["frontier"]))
            check_claims(self._verifier, self._claims(state, frontier), str(doc["signature"]), "state snapshot")
        except (ValueError, KeyError, TypeError, InvalidInput, ArtifactIntegrityError) as exc:
            log.warning("state_snapshot_refused", reason=str(exc)[:200])
            return TrustedState(), Frontier()
        return state, frontier

    def save_snapshot(self) -> None:
        """Store the current state, signed, so the next process folds only what came after."""
        with self._lock:
            if self._state is not None:
                self._save_snapshot(self._state, self._frontier)

    def _save_snapshot(self, state: TrustedState, frontier: Frontier) -> None:
        doc = {
            "state": state.to_json(),
            "frontier": frontier.to_bytes().hex(),
            "signature": sign_claims(self._signer, self._claims(state, frontier)),
        }
        try:
            with self._engine.begin() as conn:
                conn.execute(delete(meta).where(meta.c.key == SNAPSHOT_KEY))
                conn.execute(insert(meta).values(key=SNAPSHOT_KEY, value=json.dumps(doc)))
            self._snapshot_size = state.size
        except SQLAlchemyError as exc:  # a snapshot only saves time; the next refresh tries again
            log.warning("state_snapshot_not_saved", reason=str(exc).splitlines()[0][:200])

    # ------------------------------------------------------------------ background
    def follow(self, interval: float) -> None:
        """Refresh every ``interval`` seconds in a daemon thread (the gateway's way)."""
        if self._thread is not None:
            return

        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    self.refresh()
                except Exception as exc:  # the request path refuses on its own refresh
                    log.warning("state_refresh_failed", reason=str(exc)[:200])

        self._thread = threading.Thread(target=run, name="mlwarden-state", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def trusted_state(ws: Workspace, max_age: float = 0.0) -> TrustedState:
    """The verified state of ``ws`` (one follower per opened workspace)."""
    return follower(ws).state(max_age)


def follower(ws: Workspace) -> StateFollower:
    """The workspace's state follower, created on first use."""
    found = ws.services.get("state")
    if not isinstance(found, StateFollower):
        found = StateFollower(ws.engine, ws.signer, sign_head=lambda: ws.log.signed_note_for(STATE_KINDS))
        ws.services["state"] = found
    return found
