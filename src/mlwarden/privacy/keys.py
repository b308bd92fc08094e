"""Data keys (AES-256) per (scope, field, day), wrapped by the KEK, stored in ``privacy_keys``.

Granularity: a subject's payloads use one key per field (``inputs``/``outputs``) per UTC day; a
decision without subject gets its own key per field. Erasing a subject deletes every key whose
``scope_tag`` is the subject's HMAC tag; retention deletes the ``inputs`` keys of days before a
cut-off, so outputs stay readable. A key row's wrapped bytes are authenticated together with its
key id, scope tag, field and day, so a row moved to another subject or slot does not unwrap.

Unwrapped keys used for sealing are cached per process for ``cache_seconds``; opening always
reads the key row, so a key erased by another process is never used to read.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import ColumnElement, Connection, and_, delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from mlwarden.errors import StoreError
from mlwarden.ledger.canonical import canonical_json
from mlwarden.privacy.errors import KeyUnwrapFailed
from mlwarden.privacy.kek import KeyEncryptionKey
from mlwarden.privacy.scopes import Field, Scope
from mlwarden.store.schema import privacy_erasures, privacy_keys

DATA_KEY_BYTES = 32
KEY_ID_BYTES = 16
DELETE_CHUNK = 500


@dataclass(frozen=True, slots=True)
class KeySlot:
    """Where a data key belongs: a scope's tag, a field and a UTC day (``YYYY-MM-DD``)."""

    scope_tag: str
    field: Field
    day: str


@dataclass(frozen=True, slots=True)
class DataKey:
    """An unwrapped data key, ready to seal or open payloads."""

    key_id: str
    slot: KeySlot
    aead: AESGCM

    def __repr__(self) -> str:
        return f"DataKey({self.key_id})"


def wrap_context(key_id: str, slot: KeySlot) -> bytes:
    """The associated data a data key is wrapped with: binds it to its row."""
    return canonical_json(["mlwarden-dek-v1", key_id, slot.scope_tag, slot.field, slot.day])


def _in_slots(slots: set[KeySlot]) -> ColumnElement[bool]:
    return tuple_(privacy_keys.c.scope_tag, privacy_keys.c.field, privacy_keys.c.day).in_(
        [(s.scope_tag, s.field, s.day) for s in slots]
    )


def utc_day(moment: datetime) -> str:
    """The UTC calendar day of an aware ``moment``, as key slots name it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


class KeyRing:
    """Gets, creates and caches data keys under one KEK."""

    def __init__(
        self,
        kek: KeyEncryptionKey,
        *,
        cache_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kek = kek
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[KeySlot, tuple[float, DataKey]] = {}
        self._tags: dict[Scope, str] = {}

    def scope_tag(self, scope: Scope) -> str:
        """The scope's pseudonymous table key: hex HMAC under a KEK-derived key (memoised)."""
        tag = self._tags.get(scope)
        if tag is None:
            tag = self.kek.subject_tag(scope.tag_input).hex()
            if len(self._tags) > 100_000:
                self._tags.clear()
            self._tags[scope] = tag
        return tag

    def slot(self, scope: Scope, field: Field, day: str) -> KeySlot:
        """The key slot of ``scope``'s ``field`` payloads written on ``day``."""
        return KeySlot(self.scope_tag(scope), field, day)

    def unwrap_row(self, key_id: str, slot: KeySlot, kek_id: str, wrapped: bytes) -> DataKey:
        """A stored key row as a usable key; :class:`KeyUnwrapFailed` if it was not wrapped for this row."""
        if kek_id != self.kek.kek_id:
            raise KeyUnwrapFailed(f"data key {key_id} is wrapped by another key-encryption key ({kek_id})")
        secret = self.kek.unwrap(wrapped, wrap_context(key_id, slot))
        if len(secret) != DATA_KEY_BYTES:
            raise KeyUnwrapFailed(f"data key {key_id} has {len(secret)} bytes, expected {DATA_KEY_BYTES}")
        return DataKey(key_id, slot, AESGCM(secret))

    def keys_for_sealing(self, conn: Connection, slots: Iterable[KeySlot], *, now: datetime) -> dict[KeySlot, DataKey]:
        """A live key for every slot: cached, stored, or created now (one insert for all new ones)."""
        wanted = set(slots)
        found: dict[KeySlot, DataKey] = {}
        moment = self._clock()
        for slot in wanted:
            cached = self._cache.get(slot)
            if cached is not None and cached[0] > moment:
                found[slot] = cached[1]
        missing = wanted - found.keys()
        if missing:
            found |= self._load(conn, missing)
            created = missing - found.keys()
            if created:
                self._create(conn, created, now)
                found |= self._load(conn, created)
            lost = wanted - found.keys()
            if lost:
                raise StoreError(f"could not create data keys for {len(lost)} payload slots")
            expiry = moment + self._cache_seconds
            for slot in missing:
                self._cache[slot] = (expiry, found[slot])
        return found

    def _load(self, conn: Connection, slots: set[KeySlot]) -> dict[KeySlot, DataKey]:
        rows = conn.execute(
            select(
                privacy_keys.c.key_id,
                privacy_keys.c.scope_tag,
                privacy_keys.c.field,
                privacy_keys.c.day,
                privacy_keys.c.kek_id,
                privacy_keys.c.wrapped,
            ).where(
                _in_slots(slots),
                privacy_keys.c.key_id.not_in(select(privacy_erasures.c.key_id)),
            )
        ).all()
        keys: dict[KeySlot, DataKey] = {}
        for key_id, tag, field, day, kek_id, wrapped in rows:
            slot = KeySlot(tag, field, day)
            keys[slot] = self.unwrap_row(key_id, slot, kek_id, bytes(wrapped))
        return keys

    def _create(self, conn: Connection, slots: set[KeySlot], now: datetime) -> None:
        # A row restored over an erased key (its id has a tombstone) is never used: clear its slot.
        conn.execute(
            delete(privacy_keys).where(_in_slots(slots), privacy_keys.c.key_id.in_(select(privacy_erasures.c.key_id)))
        )
        ordered = sorted(slots, key=lambda s: (s.scope_tag, s.field, s.day))
        randomness = os.urandom((DATA_KEY_BYTES + KEY_ID_BYTES) * len(ordered))
        created = now.astimezone(UTC).isoformat(timespec="microseconds")
        rows = []
        for i, slot in enumerate(ordered):
            chunk = randomness[i * (DATA_KEY_BYTES + KEY_ID_BYTES) : (i + 1) * (DATA_KEY_BYTES + KEY_ID_BYTES)]
            key_id = chunk[DATA_KEY_BYTES:].hex()
            wrapped = self.kek.wrap(chunk[:DATA_KEY_BYTES], wrap_context(key_id, slot))
            rows.append(
                {
                    "key_id": key_id,
                    "scope_tag": slot.scope_tag,
                    "field": slot.field,
                    "day": slot.day,
                    "kek_id": self.kek.kek_id,
                    "wrapped": wrapped,
                    "created": created,
                }
            )
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(privacy_keys).on_conflict_do_nothing(index_elements=["scope_tag", "field", "day"])
        conn.execute(statement, rows)

    def destroy_scope(self, conn: Connection, scope_tag: str) -> list[str]:
        """Delete every key row of one scope (a subject's or a decision's); the destroyed key ids."""
        return self._destroy(conn, privacy_keys.c.scope_tag == scope_tag)

    def destroy_inputs_before(self, conn: Connection, day: str) -> list[str]:
        """Delete the ``inputs`` keys of every day before ``day`` (outputs keep theirs); the destroyed key ids."""
        return self._destroy(conn, and_(privacy_keys.c.field == "inputs", privacy_keys.c.day < day))

    def _destroy(self, conn: Connection, condition: ColumnElement[bool]) -> list[str]:
        ids = sorted(str(r[0]) for r in conn.execute(select(privacy_keys.c.key_id).where(condition)))
        for start in range(0, len(ids), DELETE_CHUNK):
            conn.execute(delete(privacy_keys).where(privacy_keys.c.key_id.in_(ids[start : start + DELETE_CHUNK])))
        gone = set(ids)
        self._cache = {slot: entry for slot, entry in self._cache.items() if entry[1].key_id not in gone}
        return ids

    def forget(self) -> None:
        """Drop every cached unwrapped key (and subject tag) held by this process."""
        self._cache.clear()
        self._tags.clear()
