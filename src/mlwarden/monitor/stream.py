"""The ledger as the watcher reads it: entries parsed once, with their time as seconds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson


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
_KIND = '"kind":"'


def peek_kind(text: str) -> tuple[int, str] | None:
    """The ``index`` and ``kind`` of canonical entry text without parsing it (None: not canonical, parse it).

    In canonical JSON (keys sorted: body, index, kind, ...) every quote inside a string is
    escaped, so the last ``,"index":`` is the top-level key and ``"kind":"`` follows it. The
    text is the truth here, not the ``kind`` column (which anyone with the database can edit).
    """
    at = text.rfind(_INDEX)
    if at < 0:
        return None
    start = at + len(_INDEX)
    end = text.find(",", start)
    digits = text[start:end]
    if not digits.isdigit() or not text.startswith(_KIND, end + 1):
        return None
    begin = end + 1 + len(_KIND)
    close = text.find('"', begin)
    if close < 0 or "\\" in text[begin:close]:
        return None
    return int(digits), text[begin:close]


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
