"""Seal a prediction's rows: per-row commitments for the entry, sealed payloads attached to it."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from mlwarden.errors import InvalidInput, StoreError
from mlwarden.ledger.entry import PayloadRow, PreparedEntry
from mlwarden.privacy import DataKey, KeyRing, LocalKek, utc_day
from mlwarden.privacy.payloads import SealedBatch, seal_prediction_rows
from mlwarden.privacy.scopes import MAX_ID
from mlwarden.store.engine import describe_db_error, write_transaction
from mlwarden.workspace import Workspace

ENTRY_VERSION = 2
_RING = "privacy_ring"


def privacy_ring(ws: Workspace) -> KeyRing:
    """The workspace's key ring (one per process: it caches subjects' keys of the day)."""
    ring = ws.services.get(_RING)
    if not isinstance(ring, KeyRing):
        ring = KeyRing(LocalKek.load(ws.options.paths.privacy_kek))
        ws.services[_RING] = ring
    return ring


def check_subjects(subjects: Any, rows: int) -> list[str] | None:
    """The request's data subjects, one per row, or None; an input error names what is wrong (never a value)."""
    if subjects is None:
        return None
    if not isinstance(subjects, list) or len(subjects) != rows:
        raise InvalidInput(f"subjects must be a list with one subject per row ({rows}), or be left out")
    for position, subject in enumerate(subjects):
        if not isinstance(subject, str) or not subject.strip() or len(subject) > MAX_ID:
            raise InvalidInput(f"subjects[{position}] must be a non-empty string of at most {MAX_ID} characters")
    return subjects


@dataclass(frozen=True, slots=True)
class SealedRows:
    """A prediction's sealed rows: the commitments its entry carries and the payload rows attached to it."""

    sealed: SealedBatch

    @property
    def body(self) -> dict[str, Any]:
        """What the entry body gains: its version and one commitment per row for inputs and for outputs."""
        return {
            "v": ENTRY_VERSION,
            "inputs_commitments": self.sealed.inputs_commitments,
            "outputs_commitments": self.sealed.outputs_commitments,
        }

    @property
    def attachments(self) -> tuple[PayloadRow, ...]:
        """The ``privacy_rows`` rows, inserted in the entry's own transaction."""
        return tuple(self.sealed.rows)

    def attach(self, entry: PreparedEntry) -> PreparedEntry:
        """The entry carrying the sealed payloads (inserted in the entry's own transaction)."""
        return entry.with_attachments(self.sealed.rows)


def check_rows(decision_ids: Sequence[str], inputs: Sequence[Any], outputs: Sequence[Any],
               subjects: Sequence[str] | None) -> None:  # fmt: skip
    """An input error unless there is one input, one output (and one subject, if any) per decision."""
    if not len(decision_ids) == len(inputs) == len(outputs):
        raise InvalidInput(f"inputs ({len(inputs)}) and outputs ({len(outputs)}) must have one row per decision")
    if subjects is not None and len(subjects) != len(decision_ids):
        raise InvalidInput(f"subjects ({len(subjects)}) must have one subject per decision ({len(decision_ids)})")


def day_keys(
    ws: Workspace,
    ring: KeyRing,
    wanted: Sequence[tuple[Sequence[str] | None, int, str]],
    *,
    lock: AbstractContextManager[object] | None = None,
) -> list[list[tuple[DataKey, DataKey]]]:
    """Each request's per-row (inputs, outputs) keys: ``(subjects or None, rows, day)`` each.

    From the ring's cache (a minute) without the database; when a key is not cached, every
    missing one is found or created in one short transaction of its own (a key without payloads
    is harmless), so a ledger transaction only inserts the rows. ``lock`` is taken around that
    transaction (the ledger's :attr:`~mlwarden.ledger.log.Log.write_lock`, when the ledger may be
    committing meanwhile). :class:`StoreError` if it fails.
    """
    found = [ring.cached_pairs(subjects, rows, day) for subjects, rows, day in wanted]
    missing = [i for i, pairs in enumerate(found) if pairs is None]
    if not missing:
        return [pairs for pairs in found if pairs is not None]
    try:
        with ws.engine.connect() as conn:  # keys that exist (past their minute in the cache): a read, no lock
            now = datetime.now(UTC)
            for i in missing:
                subjects, rows, day = wanted[i]
                found[i] = ring.stored_pairs(conn, subjects, rows, day, now=now)
        missing = [i for i, pairs in enumerate(found) if pairs is None]
        if not missing:
            return [pairs for pairs in found if pairs is not None]
        with lock or nullcontext(), write_transaction(ws.engine) as conn:
            now = datetime.now(UTC)
            for i in missing:
                subjects, rows, day = wanted[i]
                found[i] = ring.pairs(conn, subjects, rows, day, now=now)
    except SQLAlchemyError as exc:  # the record cannot be made: a store outage, not a bad request
        raise StoreError(f"data keys of the day could not be read or created: {describe_db_error(exc)}") from exc
    except OSError as exc:  # the write lock's file
        raise StoreError(f"data keys of the day could not be created: {exc.strerror}") from exc
    return [pairs for pairs in found if pairs is not None]


def seal_rows_cached(
    ws: Workspace,
    decision_ids: Sequence[str],
    inputs: Sequence[Any],
    outputs: Sequence[Any],
    subjects: Sequence[str] | None = None,
    *,
    now: datetime | None = None,
) -> SealedRows | None:
    """:func:`seal_rows` if every key it needs is cached (no database: fit for an event loop), else None."""
    check_rows(decision_ids, inputs, outputs, subjects)
    ring = privacy_ring(ws)
    day = ring.today() if now is None else utc_day(now)
    keys = ring.cached_pairs(subjects, len(decision_ids), day)
    if keys is None:
        return None
    return SealedRows(seal_prediction_rows(decision_ids, inputs, outputs, keys, shares=subjects is None))


def seal_rows(
    ws: Workspace,
    decision_ids: Sequence[str],
    inputs: Sequence[Any],
    outputs: Sequence[Any],
    subjects: Sequence[str] | None = None,
    *,
    now: datetime | None = None,
) -> SealedRows:
    """Seal each row's inputs and outputs, under its subject's keys of the day or keys of its own.

    A row without subject gets keys of its own, derived from the day's ``unnamed`` keys and a
    random share stored in its row. The keys of the day come from :func:`day_keys`.
    """
    check_rows(decision_ids, inputs, outputs, subjects)
    ring = privacy_ring(ws)
    day = ring.today() if now is None else utc_day(now)
    keys = day_keys(ws, ring, [(subjects, len(decision_ids), day)])[0]
    return SealedRows(seal_prediction_rows(decision_ids, inputs, outputs, keys, shares=subjects is None))
