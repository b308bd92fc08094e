"""Requests and denials over time for the overview chart, from the newest ledger entries (bounded work)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import orjson
from sqlalchemy import select

from mlwarden.store.schema import ledger_entries
from mlwarden.workspace import Workspace

WINDOW = 2_000
"""How many of the newest entries the chart counts: the page costs the same at any ledger size."""
CACHE_SECONDS = 2.0
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


def recent_activity(ws: Workspace, window: int = WINDOW, *, max_age: float = CACHE_SECONDS) -> Activity:
    """Requests (predictions, allowed reads) and denials per minute among the newest ``window`` entries.

    Kept for ``max_age`` seconds per process: a chart by the minute needs no fresher figures, and
    the overview then costs no ledger scan on most views.
    """
    cached = ws.services.get("console_activity")
    now = time.monotonic()
    if isinstance(cached, tuple) and cached[1] == window and now - cached[0] <= max_age:
        return cast(Activity, cached[2])
    activity = _count(ws, window)
    ws.services["console_activity"] = (now, window, activity)
    return activity


def _count(ws: Workspace, window: int) -> Activity:
    requests: dict[int, int] = {}
    denials: dict[int, int] = {}
    low = max(0, ws.log.size() - window)
    query = select(ledger_entries.c.entry).where(
        ledger_entries.c.idx >= low, ledger_entries.c.kind.in_(sorted(REQUEST_KINDS | DENIAL_KINDS))
    )
    with ws.engine.connect() as conn:
        texts = conn.execute(query).scalars().all()
    for text in texts:  # the column only narrows: the kind counted is the entry's own
        try:
            obj = orjson.loads(text)
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
    return Activity(times, [requests.get(t, 0) for t in times], [denials.get(t, 0) for t in times], window)
