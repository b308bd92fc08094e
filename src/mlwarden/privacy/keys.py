"""Data keys (AES-256), wrapped by the KEK: shared per (scope, field, day), plus per-row key shares.

Granularity (the cost is in docs/privacy.md):

* a subject's payloads use one key per field (``inputs``/``outputs``) per UTC day, a row of
  ``privacy_keys`` keyed by the subject's HMAC tag; erasing the subject deletes those rows;
* a prediction row that names no subject is sealed under a key of its own,
  ``HMAC-SHA256(day key, label || share)``: the day key is the ``unnamed`` scope's key of that
  field and day (a ``privacy_keys`` row like a subject's), the share 32 random bytes stored in
  the row. Erasing the decision deletes the share; retention destroys the day key. Either alone
  makes the row's key underivable, with or without the KEK;
* a payload sealed by :func:`mlwarden.privacy.payloads.seal` without subject (feedback) gets its
  own key, wrapped and stored inline in its ``privacy_payloads`` row.

Retention deletes the ``inputs`` keys of days before a cut-off, of every kind, so outputs stay
readable. Wrapped bytes are authenticated together with the key id, scope tag, field and day,
so a wrapped key moved to another subject, decision, field or day does not unwrap.

Unwrapped subject keys used for sealing are cached per process for ``cache_seconds``; opening
never uses the cache, so a key erased by another process is never used to read.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import ColumnElement, Connection, and_, delete, insert, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from mlwarden.errors import StoreError
from mlwarden.privacy.errors import KeyUnwrapFailed
from mlwarden.privacy.framing import frame_part, framed
from mlwarden.privacy.kek import KeyEncryptionKey, hmac_states
from mlwarden.privacy.scopes import Field, Scope
from mlwarden.store.schema import privacy_erasures, privacy_keys

DATA_KEY_BYTES = 32
KEY_ID_BYTES = 16
DELETE_CHUNK = 500
MAX_CACHED = 10_000
MAX_TAGS = 10_000
DEK_LABEL = b"mlwarden-dek-v1"
SHARE_LABEL = b"mlwarden-row-key-v1\x00"
SHARE_BYTES = 32


@dataclass(frozen=True, slots=True)
class KeySlot:
    """Where a data key belongs: a scope's tag, a field and a UTC day (``YYYY-MM-DD``)."""

    scope_tag: str
    field: Field
    day: str


@dataclass(frozen=True, slots=True)
class DataKey:
    """An unwrapped data key, ready to seal or open payloads, or to derive a row's key from its share."""

    key_id: str
    slot: KeySlot
    aead: AESGCM
    _mac: tuple[Any, Any] = dataclasses.field(default=(None, None), compare=False)
    """HMAC-SHA256's inner state after the padded key and the row-key label, and its outer state."""
    aad_tail: bytes = b""
    """The field and key id parts of a payload's associated data (see ``privacy.framing``), framed once."""

    @classmethod
    def from_secret(cls, key_id: str, slot: KeySlot, secret: bytes) -> DataKey:
        """The key ``secret`` (32 bytes) as an AEAD and as an HMAC key (pad states computed once)."""
        inner, outer = hmac_states(secret)
        inner.update(SHARE_LABEL)
        return cls(key_id, slot, AESGCM(secret), (inner, outer), frame_part(slot.field) + frame_part(key_id))

    def row_key(self, share: bytes) -> AESGCM:
        """The key of one row: ``HMAC-SHA256(this key, b"mlwarden-row-key-v1\\x00" || share)`` as AES-256-GCM."""
        inner = self._mac[0].copy()
        inner.update(share)
        outer = self._mac[1].copy()
        outer.update(inner.digest())
        return AESGCM(outer.digest())

    def __repr__(self) -> str:
        return f"DataKey({self.key_id})"


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just made: usable at once, and its wrapped bytes to store (in a key row or inline)."""

    key: DataKey
    kek_id: str
    wrapped: bytes


def wrap_context(key_id: str, slot: KeySlot) -> bytes:
    """The associated data a data key is wrapped with: binds it to its key id, scope tag, field and day."""
    return framed(DEK_LABEL, key_id, slot.scope_tag, slot.field, slot.day)


def _in_slots(slots: set[KeySlot]) -> ColumnElement[bool]:
    return tuple_(privacy_keys.c.scope_tag, privacy_keys.c.field, privacy_keys.c.day).in_(
        [(s.scope_tag, s.field, s.day) for s in slots]
    )


def utc_day(moment: datetime) -> str:
    """The UTC calendar day of an aware ``moment``, as key slots name it."""
    return moment.astimezone(UTC).date().isoformat()


class KeyRing:
    """Makes, finds, unwraps and caches data keys under one KEK."""

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
        self._pairs: dict[tuple[str | None, str], tuple[float, DataKey, DataKey]] = {}
        self._day: tuple[float, float, str] = (0.0, 0.0, "")

    def today(self) -> str:
        """:func:`utc_day` of now (the day's bounds remembered: one clock read per call)."""
        moment = time.time()
        start, end, day = self._day
        if not start <= moment < end:
            start = moment - moment % 86400
            day = utc_day(datetime.fromtimestamp(start, UTC))
            self._day = (start, start + 86400, day)
        return day

    def scope_tag(self, scope: Scope) -> str:
        """The scope's pseudonymous table key: hex HMAC under a KEK-derived key (memoised for shared scopes)."""
        tag = self._tags.get(scope)
        if tag is None:
            tag = self.kek.subject_tag(scope.tag_input).hex()
            if scope.kind != "decision":
                if len(self._tags) >= MAX_TAGS:
                    self._tags.clear()
                self._tags[scope] = tag
        return tag

    def slot(self, scope: Scope, field: Field, day: str) -> KeySlot:
        """The key slot of ``scope``'s ``field`` payloads written on ``day``."""
        return KeySlot(self.scope_tag(scope), field, day)

    def unwrap_row(self, key_id: str, slot: KeySlot, kek_id: str, wrapped: bytes) -> DataKey:
        """A stored wrapped key as a usable key; :class:`KeyUnwrapFailed` if it was not wrapped for this place."""
        if kek_id != self.kek.kek_id:
            raise KeyUnwrapFailed(f"data key {key_id} is wrapped by another key-encryption key ({kek_id})")
        secret = self.kek.unwrap(wrapped, wrap_context(key_id, slot))
        if len(secret) != DATA_KEY_BYTES:
            raise KeyUnwrapFailed(f"data key {key_id} has {len(secret)} bytes, expected {DATA_KEY_BYTES}")
        return DataKey.from_secret(key_id, slot, secret)

    def new_keys(self, slots: Sequence[KeySlot]) -> list[NewKey]:
        """Fresh random keys for ``slots`` (in order), wrapped; one ``os.urandom`` call for all."""
        step = DATA_KEY_BYTES + KEY_ID_BYTES
        randomness = os.urandom(step * len(slots))
        kek_id = self.kek.kek_id
        out = []
        for i, slot in enumerate(slots):
            secret = randomness[i * step : i * step + DATA_KEY_BYTES]
            key_id = randomness[i * step + DATA_KEY_BYTES : (i + 1) * step].hex()
            wrapped = self.kek.wrap(secret, wrap_context(key_id, slot))
            out.append(NewKey(DataKey.from_secret(key_id, slot, secret), kek_id, wrapped))
        return out

    def cached_subject_keys(self, slots: Iterable[KeySlot]) -> dict[KeySlot, DataKey] | None:
        """The live cached key of every slot, or None if any is not cached (then use :meth:`subject_keys`)."""
        moment = self._clock()
        found: dict[KeySlot, DataKey] = {}
        for slot in slots:
            cached = self._cache.get(slot)
            if cached is None or cached[0] <= moment:
                return None
            found[slot] = cached[1]
        return found

    def subject_keys(
        self, conn: Connection, slots: Iterable[KeySlot], *, now: datetime, create: bool = True
    ) -> dict[KeySlot, DataKey]:
        """A live shared key for every subject slot: cached, stored, or created now (one insert for all new).

        ``create=False``: only cached and stored keys, none made (``conn`` may be a read); the slots
        without a key are missing from the answer, and nothing is cached for them.
        """
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
            absent = missing - found.keys()
            if absent and not create:
                missing -= absent
            elif absent:
                found |= self._create(conn, absent, now)
            if len(self._cache) + len(missing) > MAX_CACHED:
                self._cache.clear()
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
            ).where(_in_slots(slots), privacy_keys.c.key_id.not_in(select(privacy_erasures.c.key_id)))
        ).all()
        keys: dict[KeySlot, DataKey] = {}
        for key_id, tag, field, day, kek_id, wrapped in rows:
            slot = KeySlot(tag, field, day)
            keys[slot] = self.unwrap_row(key_id, slot, kek_id, bytes(wrapped))
        return keys

    def _create(self, conn: Connection, slots: set[KeySlot], now: datetime) -> dict[KeySlot, DataKey]:
        """New keys for ``slots``: one insert; if another writer (or a restored row) took a slot, theirs is used."""
        created = now.astimezone(UTC).isoformat(timespec="microseconds")
        made = self.new_keys(sorted(slots, key=lambda s: (s.scope_tag, s.field, s.day)))
        rows = [
            {
                "key_id": new.key.key_id,
                "scope_tag": new.key.slot.scope_tag,
                "field": new.key.slot.field,
                "day": new.key.slot.day,
                "kek_id": new.kek_id,
                "wrapped": new.wrapped,
                "created": created,
            }
            for new in made
        ]
        try:
            with conn.begin_nested():
                conn.execute(insert(privacy_keys), rows)
        except IntegrityError:
            return self._create_contended(conn, slots, rows)
        return {new.key.slot: new.key for new in made}

    def _create_contended(
        self, conn: Connection, slots: set[KeySlot], rows: list[dict[str, Any]]
    ) -> dict[KeySlot, DataKey]:
        # A row restored over an erased key (its id has a tombstone) is never used: clear its slot.
        conn.execute(
            delete(privacy_keys).where(_in_slots(slots), privacy_keys.c.key_id.in_(select(privacy_erasures.c.key_id)))
        )
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(privacy_keys).on_conflict_do_nothing(index_elements=["scope_tag", "field", "day"])
        conn.execute(statement, rows)
        keys = self._load(conn, slots)
        if len(keys) != len(slots):
            raise StoreError(f"could not create data keys for {len(slots) - len(keys)} payload slots")
        return keys

    def destroy_scope(self, conn: Connection, scope_tag: str) -> list[str]:
        """Delete every key row of one subject; the destroyed key ids."""
        return self._destroy(conn, privacy_keys.c.scope_tag == scope_tag)

    def destroy_inputs_before(self, conn: Connection, day: str) -> list[str]:
        """Delete the shared ``inputs`` keys of every day before ``day`` (outputs keep theirs); their ids."""
        return self._destroy(conn, and_(privacy_keys.c.field == "inputs", privacy_keys.c.day < day))

    def _destroy(self, conn: Connection, condition: ColumnElement[bool]) -> list[str]:
        ids = sorted(str(r[0]) for r in conn.execute(select(privacy_keys.c.key_id).where(condition)))
        for start in range(0, len(ids), DELETE_CHUNK):
            conn.execute(delete(privacy_keys).where(privacy_keys.c.key_id.in_(ids[start : start + DELETE_CHUNK])))
        self.forget_keys(set(ids))
        return ids

    def forget_keys(self, key_ids: set[str]) -> None:
        """Drop these keys from the sealing cache."""
        self._cache = {slot: entry for slot, entry in self._cache.items() if entry[1].key_id not in key_ids}
        self._pairs = {k: v for k, v in self._pairs.items() if not {v[1].key_id, v[2].key_id} & key_ids}

    def forget(self) -> None:
        """Drop every cached unwrapped key (and subject tag) held by this process."""
        self._cache.clear()
        self._tags.clear()
        self._pairs.clear()

    def cached_pairs(self, subjects: Sequence[str] | None, rows: int, day: str) -> list[tuple[DataKey, DataKey]] | None:
        """Each row's (inputs, outputs) keys of ``day`` from the cache (a subject's, or the ``unnamed`` scope's
        when ``subjects`` is None), or None when one is not cached (then :meth:`pairs`)."""
        moment = self._clock()
        pairs = self._pairs
        if subjects is None:
            cached = pairs.get((None, day))
            return None if cached is None or cached[0] <= moment else [(cached[1], cached[2])] * rows
        out = []
        for subject in subjects:
            cached = pairs.get((subject, day))
            if cached is None or cached[0] <= moment:
                return None
            out.append((cached[1], cached[2]))
        return out

    def pairs(
        self, conn: Connection, subjects: Sequence[str] | None, rows: int, day: str, *, now: datetime
    ) -> list[tuple[DataKey, DataKey]]:
        """As :meth:`cached_pairs`, finding or creating the keys in ``conn`` (see :meth:`subject_keys`); cached."""
        found = self._found_pairs(conn, subjects, rows, day, now=now, create=True)
        if found is None:  # create=True makes every key that is missing
            raise StoreError("data keys of the day could not be created")
        return found

    def stored_pairs(
        self, conn: Connection, subjects: Sequence[str] | None, rows: int, day: str, *, now: datetime
    ) -> list[tuple[DataKey, DataKey]] | None:
        """As :meth:`pairs` without creating any key (``conn`` may be a read): None unless every key exists."""
        return self._found_pairs(conn, subjects, rows, day, now=now, create=False)

    def _found_pairs(
        self, conn: Connection, subjects: Sequence[str] | None, rows: int, day: str, *, now: datetime, create: bool
    ) -> list[tuple[DataKey, DataKey]] | None:
        names: list[str | None] = [None] if subjects is None else list(dict.fromkeys(subjects))
        slots = {}
        for name in names:
            tag = self.scope_tag(Scope.unnamed() if name is None else Scope.subject(name))
            slots[name] = (KeySlot(tag, "inputs", day), KeySlot(tag, "outputs", day))
        found = self.subject_keys(conn, {slot for pair in slots.values() for slot in pair}, now=now, create=create)
        if any(slot not in found for pair in slots.values() for slot in pair):
            return None
        if len(self._pairs) + len(names) > MAX_CACHED:
            self._pairs.clear()
        expiry = self._clock() + self._cache_seconds
        for name, (inputs, outputs) in slots.items():
            self._pairs[(name, day)] = (expiry, found[inputs], found[outputs])
        if subjects is None:
            return [(found[slots[None][0]], found[slots[None][1]])] * rows
        return [(found[slots[s][0]], found[slots[s][1]]) for s in subjects]
