"""Ledger entries: the RFC 8785 canonical JSON of {index, kind, time, principal, subject, body}."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

import orjson

from mlwarden.errors import InvalidInput
from mlwarden.ledger.canonical import canonical_json
from mlwarden.ledger.columns import derived, derived_from_json

_KIND = re.compile(r"^[a-z][a-z0-9_.:-]{0,63}$")
MAX_SUBJECT = 512
MAX_PRINCIPAL = 512
MAX_BODY_BYTES = 1 << 20

PayloadRow = tuple[str, str, str, str, bytes | None, bytes, bytes]
"""A decision's sealed row stored with its entry: ``(decision_id, day, inputs_key, outputs_key, share, inputs,
outputs)``, the columns of ``privacy_rows`` before ``ledger_index`` (see :mod:`mlwarden.privacy.payloads`)."""


def _canonical_str(value: str) -> bytes:
    """A string's JCS form: orjson escapes strings exactly as RFC 8785 does (and refuses lone surrogates)."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return canonical_json(value)  # names the problem


def parse_json_object(text: str, *, what: str = "body") -> dict[str, Any]:
    """Strict JSON object parsing: no NaN/Infinity, no duplicate keys, an object at the top."""

    def _no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                raise InvalidInput(f"{what} has the key {k!r} twice")
            out[k] = v
        return out

    def _no_constant(name: str) -> Any:
        raise InvalidInput(f"{what} contains {name}, which JSON cannot carry")

    try:
        value = json.loads(text, object_pairs_hook=_no_dupes, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise InvalidInput(f"{what} is nested too deeply") from exc
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def utc_now() -> str:
    """The entry time format: RFC 3339 UTC with microseconds and a Z."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@functools.lru_cache(maxsize=4096)
def _tail(kind: str, principal: str, subject: str) -> bytes:
    """The checked, rendered ``kind``/``principal``/``subject`` part of an entry (few distinct ones: cached)."""
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise InvalidInput(
            f"kind {kind!r} is not valid: use 1-64 lowercase letters, digits, '_', '.', ':' or '-', "
            "starting with a letter"
        )
    if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT:
        raise InvalidInput(f"subject must be a non-empty string of at most {MAX_SUBJECT} characters")
    if not isinstance(principal, str) or not principal or len(principal) > MAX_PRINCIPAL:
        raise InvalidInput(f"principal must be a non-empty string of at most {MAX_PRINCIPAL} characters")
    return (
        b',"kind":'
        + _canonical_str(kind)
        + b',"principal":'
        + _canonical_str(principal)
        + b',"subject":'
        + _canonical_str(subject)
        + b',"time":'
    )


def check_entry_fields(*, kind: str, subject: str, principal: str) -> None:
    """Raise :class:`InvalidInput` unless ``kind``, ``subject`` and ``principal`` are fit for an entry."""
    try:
        _tail(kind, principal, subject)
    except TypeError:  # an unhashable field is no string: the uncached check says which
        _tail.__wrapped__(kind, principal, subject)


@dataclass(frozen=True, slots=True)
class PreparedEntry:
    """An entry checked and canonicalised by its caller, waiting for its index and time.

    Everything but ``index`` and ``time`` is rendered here, in the caller's thread, so
    the group-commit leader only concatenates bytes.
    """

    kind: str
    subject: str
    principal: str
    body_json: bytes
    _head: bytes
    _tail: bytes
    refs: tuple[str, ...] = ()
    attachments: tuple[PayloadRow, ...] = ()
    """Sealed payloads the entry commits to: inserted with the entry's index, in its transaction."""
    decision: str | None = None
    """The ``decision`` lookup column (see :mod:`mlwarden.ledger.columns`)."""
    status: int | None = None
    """The ``status`` lookup column."""

    def with_attachments(self, rows: Sequence[PayloadRow]) -> PreparedEntry:
        """This entry carrying ``rows`` (written in the same transaction, or not at all)."""
        return PreparedEntry(
            self.kind, self.subject, self.principal, self.body_json, self._head, self._tail, self.refs, tuple(rows),
            self.decision, self.status,
        )  # fmt: skip

    def with_body(self, body_json: bytes, attachments: Sequence[PayloadRow] = ()) -> PreparedEntry:
        """This entry's kind, subject, principal and references around another canonical body (and attachments).

        The fields were checked when this entry was prepared, so only the body's size is (the
        cheap way to prepare many entries that differ in their bodies alone).
        """
        if len(body_json) > MAX_BODY_BYTES:
            raise InvalidInput(f"body is {len(body_json)} bytes; the limit is {MAX_BODY_BYTES}")
        decision, status = derived_from_json(self.kind, body_json)
        return PreparedEntry(
            self.kind, self.subject, self.principal, body_json, b'{"body":' + body_json + b',"index":', self._tail,
            self.refs, tuple(attachments), decision, status,
        )  # fmt: skip

    @classmethod
    def build(
        cls, *, kind: str, subject: str, principal: str, body: dict[str, Any], refs: tuple[str, ...] = (),
        attachments: tuple[PayloadRow, ...] = (),
    ) -> PreparedEntry:  # fmt: skip
        """Check every field and canonicalise the body; raise :class:`InvalidInput` if unfit."""
        if not isinstance(body, dict):
            raise InvalidInput(f"body must be a JSON object, got {type(body).__name__}")
        return cls.from_canonical(kind=kind, subject=subject, principal=principal, body_json=canonical_json(body),
                                  refs=refs, attachments=attachments, columns=derived(kind, body))  # fmt: skip

    @classmethod
    def from_canonical(
        cls, *, kind: str, subject: str, principal: str, body_json: bytes, refs: tuple[str, ...] = (),
        attachments: tuple[PayloadRow, ...] = (), columns: tuple[str | None, int | None] | None = None,
    ) -> PreparedEntry:  # fmt: skip
        """As :meth:`build`, from a body already rendered as canonical JSON (the ledger writer's wire)."""
        try:
            tail = _tail(kind, principal, subject)
        except TypeError:  # an unhashable field is no string: the uncached check says which
            tail = _tail.__wrapped__(kind, principal, subject)
        if len(body_json) > MAX_BODY_BYTES:
            raise InvalidInput(f"body is {len(body_json)} bytes; the limit is {MAX_BODY_BYTES}")
        for ref in refs:
            if not isinstance(ref, str) or not 0 < len(ref) <= 64:
                raise InvalidInput("entry references must be strings of 1-64 characters")
        decision, status = derived_from_json(kind, body_json) if columns is None else columns
        head = b'{"body":' + body_json + b',"index":'
        return cls(kind, subject, principal, body_json, head, tail, tuple(refs), attachments, decision, status)

    def render(self, index: int, time: str) -> bytes:
        """The canonical entry bytes at ``index`` and ``time`` (keys in RFC 8785 order)."""
        return self._head + str(index).encode() + self._tail + b'"' + time.encode() + b'"}'


D = TypeVar("D")
D_contra = TypeVar("D_contra", contravariant=True)


class EntryFinisher(Protocol[D_contra]):
    """Finishes entries handed over unfinished (see :class:`PendingEntry`), a whole batch at once."""

    def finish(self, items: Sequence[D_contra]) -> list[PreparedEntry | Exception]:
        """One prepared entry per item, in order, or the exception that refuses that item's caller alone
        (e.g. a value JSON cannot carry). Raising fails every caller of the batch; nothing is written."""
        ...


@dataclass(frozen=True, slots=True)
class PendingEntry(Generic[D]):
    """An entry whose last steps (rendering its body, sealing its payloads) the group commit does for a whole batch.

    Done by each caller, that work would be GIL-held work of many threads interleaved with the
    leader's writes, stretching every write; done in the group commit's prepare stage, it runs in
    one tight loop while the previous batch waits on the disk (see
    :mod:`mlwarden.ledger.group_commit`). What is wrong with one caller's data is refused for
    that caller alone (the finisher returns the error in its entry's place).
    """

    finisher: EntryFinisher[D]
    item: D


Appendable = PreparedEntry | PendingEntry[Any]
"""What :meth:`mlwarden.ledger.log.Log.append_many` takes."""


def finish_entries(batch: Sequence[Appendable]) -> list[PreparedEntry | Exception]:
    """``batch`` with every pending entry finished (or refused: its error in its place), one
    :meth:`EntryFinisher.finish` call per finisher, order kept."""
    groups: dict[int, tuple[EntryFinisher[Any], list[int], list[Any]]] = {}
    for position, entry in enumerate(batch):
        if isinstance(entry, PendingEntry):
            group = groups.setdefault(id(entry.finisher), (entry.finisher, [], []))
            group[1].append(position)
            group[2].append(entry.item)
    finished: dict[int, PreparedEntry | Exception] = {}
    for finisher, positions, items in groups.values():
        entries = finisher.finish(items)
        if len(entries) != len(items):
            raise RuntimeError(f"an entry finisher returned {len(entries)} entries for {len(items)} items")
        finished.update(zip(positions, entries, strict=True))
    return [entry if isinstance(entry, PreparedEntry) else finished[i] for i, entry in enumerate(batch)]


_INDEX_MARK = b',"index":'


def embedded_index(entry: bytes) -> int | None:
    """The ``index`` field of a canonical entry, read without a full JSON parse.

    In canonical JSON every quote inside a string is escaped, so the last ``,"index":``
    is the top-level key (``body`` is the only key before it; the keys after it are strings).
    """
    at = entry.rfind(_INDEX_MARK)
    if at < 0:
        return None
    start = at + len(_INDEX_MARK)
    end = entry.find(b",", start)
    digits = entry[start:end]
    return int(digits) if digits.isdigit() else None


@dataclass(frozen=True, slots=True)
class Entry:
    """A recorded entry, parsed from its stored canonical text."""

    index: int
    kind: str
    time: str
    principal: str
    subject: str
    body: dict[str, Any]

    @classmethod
    def parse(cls, text: bytes | str) -> Entry:
        """Parse stored entry text; raise :class:`InvalidInput` when it is not an entry."""
        raw = text.decode() if isinstance(text, bytes) else text
        obj = parse_json_object(raw, what="ledger entry")
        try:
            return cls(
                index=int(obj["index"]),
                kind=str(obj["kind"]),
                time=str(obj["time"]),
                principal=str(obj["principal"]),
                subject=str(obj["subject"]),
                body=dict(obj["body"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"ledger entry lacks a field or has a wrong type: {exc}") from exc

    def to_json(self) -> dict[str, Any]:
        """The entry as a plain JSON object."""
        return {
            "index": self.index,
            "kind": self.kind,
            "time": self.time,
            "principal": self.principal,
            "subject": self.subject,
            "body": self.body,
        }
