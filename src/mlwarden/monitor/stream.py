"""The ledger as the watcher reads it: entries parsed once (or only their header), with their time as seconds."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson

from mlwarden.ledger.entry import utc_now


@dataclass(frozen=True, slots=True)
class WatchedEntry:
    """One ledger entry as rules see it (``at``: its time in seconds since 1970)."""

    index: int
    kind: str
    time: str
    at: float
    principal: str
    subject: str
    body: dict[str, Any]


class UnreadableEntry(ValueError):
    """A stored entry that is not an entry, or not the one its index says (a finding, not a crash)."""


@lru_cache(maxsize=4096)
def parse_time(text: str) -> float:
    """Seconds since 1970 of an entry time (RFC 3339 UTC with a ``Z``; a batch's entries share theirs)."""
    return datetime.fromisoformat(text).timestamp()


_INDEX = ',"index":'
_HEADER = re.compile(
    r',"index":(0|[1-9][0-9]{0,17}),"kind":"([^"\\]*)","principal":"([^"\\]*)","subject":"([^"\\]*)",'
    r'"time":"([^"\\]*)"\}\Z'
)
_DECISIONS = '{"body":{"decision_ids":['


@dataclass(frozen=True, slots=True)
class Header:
    """The top-level fields of an entry read from the end of its text: what a full parse would give."""

    index: int
    kind: str
    principal: str
    subject: str
    time: str


def read_header(text: str) -> Header | None:
    """The ``index``, ``kind``, ``principal``, ``subject`` and ``time`` of canonical entry text without parsing it.

    In canonical JSON (RFC 8785: keys sorted ``body, index, kind, principal, subject, time``)
    these are the last members, and every quote inside a string is escaped, so the last
    ``,"index":`` is the top-level key. Only plain strings are read (no quote or backslash in
    them); anything else gives None, and the caller parses the entry in full. The text is the
    truth here, never the lookup columns (which anyone with the database can edit).
    """
    found = _HEADER.match(text, text.rfind(_INDEX))
    if found is None:
        return None
    index, kind, principal, subject, time = found.groups()
    return Header(int(index), kind, principal, subject, time)


def count_decisions(text: str) -> int | None:
    """How many ``decision_ids`` a prediction's canonical text lists (its body's first member), without parsing it.

    Only a list of plain strings is counted: between ``[`` and the first ``]``, no backslash
    or ``[``, and every comma inside a ``","`` with only the first and last quotes besides,
    so the text can only be ``"id","id",…,"id"``. Anything else gives None (parse it in full).
    """
    if not text.startswith(_DECISIONS):
        return None
    begin = len(_DECISIONS)
    end = text.find("]", begin)
    if end < 0 or text.find("\\", begin, end) >= 0 or text.find("[", begin, end) >= 0:
        return None
    if end == begin:
        return 0
    commas = text.count(",", begin, end)
    if (
        text[begin] != '"'
        or text[end - 1] != '"'
        or text.count('","', begin, end) != commas
        or text.count('"', begin, end) != 2 * commas + 2
    ):
        return None
    return commas + 1


def read_entry(index: int, text: str | bytes) -> WatchedEntry:
    """Parse stored entry text at ``index``; raise :class:`UnreadableEntry` when it is not that entry."""
    try:
        obj = orjson.loads(text)
        entry = WatchedEntry(
            index=int(obj["index"]),
            kind=str(obj["kind"]),
            time=str(obj["time"]),
            at=parse_time(str(obj["time"])),
            principal=str(obj["principal"]),
            subject=str(obj["subject"]),
            body=obj["body"] if isinstance(obj["body"], dict) else {},
        )
    except (ValueError, KeyError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
        raise UnreadableEntry(f"ledger entry {index} cannot be read: {str(exc)[:200]}") from exc
    if entry.index != index:
        raise UnreadableEntry(f"ledger entry {index} says it is entry {entry.index}")
    return entry


PREDICTION = "prediction"


@dataclass(slots=True)
class Light:
    """Predictions of one (subject, principal) read from their text's header and decision list only, in index order."""

    index: list[int] = field(default_factory=list)
    at: list[float] = field(default_factory=list)
    rows: list[float] = field(default_factory=list)
    """How many decisions each one answered."""


@dataclass(slots=True)
class EntryBatch:
    """A chunk of the ledger as the rules take it.

    ``entries``: every entry of a watched kind parsed in full, in index order (and findings for
    missing or unreadable ones), except the ``light`` predictions: those no rule needs the body
    of (not opened by the sampler), kept as columns per (subject, principal).
    """

    entries: list[WatchedEntry]
    light: dict[tuple[str, str], Light]
    admitted: set[int]
    """Indices of the predictions the sampler let in (to be opened)."""


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """What the rules need from a chunk: which kinds, whether predictions may stay light, which to open."""

    wanted: Callable[[str], bool]
    light_predictions: bool = False
    admit: Callable[[float, str, str], bool] | None = None
    """The sampler's decision for each prediction, asked once per prediction in index order."""


def read_batch(rows: list[tuple[int, str, str]], start: int, stop: int, plan: ReadPlan) -> EntryBatch:
    """The batch of ``rows`` (indices ``start..stop-1``, from :func:`read_rows`): gaps and unreadable text are findings.

    Every kind is read from the entry's own text (:func:`read_header`), never from the
    ``kind`` column. An unwatched kind is skipped unparsed; a prediction that the sampler does
    not open and whose decisions can be counted from its text stays light; anything else
    (or any text not in plain canonical form) is parsed in full.
    """
    header, wanted = _HEADER.match, plan.wanted
    predictions = wanted(PREDICTION)
    admit = plan.admit if predictions else None
    light_ok = predictions and plan.light_predictions
    batch = EntryBatch([], {}, set())
    entries = batch.entries
    light: dict[tuple[str, str], list[tuple[int, float, float]]] = {}
    times: dict[str, float] = {}
    expected = start
    for idx, _hint, text in rows:
        if idx != expected:
            entries += [finding(i, "the entry is missing from the ledger") for i in range(expected, idx)]
        expected = idx + 1
        found = header(text, text.rfind(_INDEX))
        if found is None:
            _parse_in_full(batch, idx, text, wanted, admit)
            continue
        index_text, kind, principal, subject, time_text = found.groups()
        if int(index_text) != idx:
            _parse_in_full(batch, idx, text, wanted, admit)
        elif kind != PREDICTION:
            if wanted(kind):
                _parse_in_full(batch, idx, text, wanted, None)
        elif predictions:
            at = times.get(time_text)
            if at is None:
                try:
                    at = times[time_text] = parse_time(time_text)
                except ValueError:  # not a time: the full parse makes it a finding
                    _parse_in_full(batch, idx, text, wanted, admit)
                    continue
            if admit is not None and admit(at, subject, principal):
                batch.admitted.add(idx)
                _parse_in_full(batch, idx, text, wanted, None)
                continue
            counted = count_decisions(text) if light_ok else None
            if counted is None:
                _parse_in_full(batch, idx, text, wanted, None)
                continue
            group = light.get((subject, principal))
            if group is None:
                group = light[(subject, principal)] = []
            group.append((idx, at, float(counted)))
    entries += [finding(i, "the entry is missing from the ledger") for i in range(expected, stop)]
    for pair, group in light.items():
        indices, ats, counts = zip(*group, strict=True)
        batch.light[pair] = Light(list(indices), list(ats), list(counts))
    return batch


Admit = Callable[[float, str, str], bool]


def _parse_in_full(batch: EntryBatch, idx: int, text: str, wanted: Callable[[str], bool], admit: Admit | None) -> None:
    """Parse one entry (a finding if it cannot be read); a prediction not yet asked about goes to the sampler first."""
    try:
        entry = read_entry(idx, text)
    except UnreadableEntry as exc:
        batch.entries.append(finding(idx, str(exc)))
        return
    if not wanted(entry.kind):
        return
    if entry.kind == PREDICTION and admit is not None and admit(entry.at, entry.subject, entry.principal):
        batch.admitted.add(idx)
    batch.entries.append(entry)


FINDER = "system:watcher"
UNREADABLE = "ledger.unreadable_entry"
"""Not a recorded kind: the watcher's own finding for an entry it cannot read (or one missing)."""


def finding(index: int, problem: str) -> WatchedEntry:
    """The watcher's finding for entry ``index`` (missing, unreadable, or lying about its index)."""
    now = utc_now()
    return WatchedEntry(index, UNREADABLE, now, parse_time(now), FINDER, f"ledger:{index}", {"problem": problem})
