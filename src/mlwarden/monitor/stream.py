"""The ledger as the watcher reads it: entries parsed once, with their time as seconds."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any


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


def parse_time(text: str) -> float:
    """Seconds since 1970 of an entry time (RFC 3339 UTC with a ``Z``)."""
    return datetime.fromisoformat(text).timestamp()


def read_entry(index: int, text: str | bytes) -> WatchedEntry:
    """Parse stored entry text at ``index``; raise :class:`UnreadableEntry` when it is not that entry."""
    try:
        obj = json.loads(text)
        entry = WatchedEntry(
            index=int(obj["index"]),
            kind=str(obj["kind"]),
            time=str(obj["time"]),
            at=parse_time(str(obj["time"])),
            principal=str(obj["principal"]),
            subject=str(obj["subject"]),
            body=obj["body"] if isinstance(obj["body"], dict) else {},
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise UnreadableEntry(f"ledger entry {index} cannot be read: {str(exc)[:200]}") from exc
    if entry.index != index:
        raise UnreadableEntry(f"ledger entry {index} says it is entry {entry.index}")
    return entry
