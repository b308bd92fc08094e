"""Requests and denials over time for the overview chart, from the newest ledger entries (bounded work)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import orjson

from mlwarden.workspace import Workspace

WINDOW = 2_000
"""How many of the newest entries the chart counts: the page costs the same at any ledger size."""
REQUEST_KINDS = frozenset({"prediction", "access.allowed"})
DENIAL_KINDS = frozenset({"access.denied", "request.rejected"})


@dataclass(frozen=True, slots=True)
class Activity:
    """Counts per minute: ``times`` in seconds since 1970, ``requests`` and ``denials`` alike long."""

    times: list[int]
    requests: list[int]
    denials: list[int]
    entries: int

    def to_json(self) -> dict[str, object]:
        return {"times": self.times, "requests": self.requests, "denials": self.denials, "entries": self.entries}


def _minute(text: str) -> int | None:
    try:
        return int(datetime.fromisoformat(text).timestamp()) // 60 * 60
    except ValueError:
        return None


def recent_activity(ws: Workspace, window: int = WINDOW) -> Activity:
    """Requests (predictions, allowed reads) and denials per minute among the newest ``window`` entries."""
    requests: dict[int, int] = {}
    denials: dict[int, int] = {}
    stored = ws.log.tail(window)
    for entry in stored:
        try:
            obj = orjson.loads(entry.text)
        except orjson.JSONDecodeError:
            continue
        kind = obj.get("kind") if isinstance(obj, dict) else None
        if kind not in REQUEST_KINDS and kind not in DENIAL_KINDS:
            continue
        minute = _minute(str(obj.get("time")))
        if minute is None:
            continue
        counts = requests if kind in REQUEST_KINDS else denials
        counts[minute] = counts.get(minute, 0) + 1
    times = sorted({*requests, *denials})
    return Activity(times, [requests.get(t, 0) for t in times], [denials.get(t, 0) for t in times], len(stored))
