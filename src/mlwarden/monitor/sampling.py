"""Opening a bounded sample of sealed prediction payloads for the inference rules.

The watcher holds the workspace keys, but decrypting every prediction would cap detection
far below the ledger's rate. Per (model, principal) it opens at most ``budget`` entries in
any ``window`` seconds, and at most ``rows_per_entry`` rows of each: enough for PSI and class
rates, and deterministic (the same entries give the same sample after a restart).
"""

from __future__ import annotations

import hashlib
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlwarden.errors import InvalidInput
from mlwarden.ledger.canonical import canonical_json
from mlwarden.privacy import Commitment, Opened, OpenResult, PayloadClaim, open_many
from mlwarden.privacy.scopes import FIELDS
from mlwarden.subjects.sealing import ENTRY_VERSION, privacy_ring
from mlwarden.workspace import Workspace

_NOT_PREPARED = object()
Opener = Callable[[Sequence[PayloadClaim]], list[OpenResult]]


@dataclass(frozen=True, slots=True)
class Sample:
    """The opened rows of one prediction entry (only rows whose inputs and outputs both opened)."""

    inputs: list[Any]
    outputs: list[Any]
    derived: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """What rules computed from it (binned features per reference), computed once per entry."""


class PayloadSampler:
    """Decides which prediction entries to open, opens them, and remembers the result for the entry."""

    def __init__(self, opener: Opener, *, budget: int = 50, window: float = 300.0, rows_per_entry: int = 16) -> None:
        self.opener = opener
        self.budget = budget
        self.window = window
        self.rows_per_entry = rows_per_entry
        self._opened: dict[tuple[str, str], deque[float]] = {}
        self._last: tuple[int, Sample | None] = (-1, None)
        self._ready: dict[int, Sample | None] = {}
        self.opened_entries = 0

    def prepare(self, entries: Sequence[Any]) -> None:
        """Decide which of these prediction entries to open and open them all at once (a few bulk queries).

        ``entries`` are :class:`~mlwarden.monitor.stream.WatchedEntry` in index order; the
        decisions are the ones :meth:`sample` would take entry by entry.
        """
        admitted = {e.index for e in entries if e.kind == "prediction" and self.admit(e.at, e.subject, e.principal)}
        self.open(entries, admitted)

    def open(self, entries: Sequence[Any], admitted: set[int]) -> None:
        """Open the payloads of the prediction ``entries`` whose index :meth:`admit` let in (the others: no sample)."""
        chosen: list[tuple[int, int, list[PayloadClaim]]] = []
        claims: list[PayloadClaim] = []
        self._ready = {}
        for entry in entries:
            if entry.kind != "prediction":
                continue
            if entry.index not in admitted:
                self._ready[entry.index] = None
                continue
            body = entry.body
            if body.get("v") != ENTRY_VERSION:
                self._ready[entry.index] = _clear_sample(body, self.rows_per_entry)
                continue
            mine = _claims(body, self.rows_per_entry)
            if mine is None:
                self._ready[entry.index] = None
                continue
            chosen.append((entry.index, len(claims), mine))
            claims += mine
        results = self.opener(claims) if claims else []
        for index, at, mine in chosen:
            self._ready[index] = _sample_of(results[at : at + len(mine)])

    def sample(self, index: int, at: float, subject: str, principal: str, body: dict[str, Any]) -> Sample | None:
        """The sample of this entry, or None when the budget is spent (asked twice: the same answer)."""
        ready = self._ready.get(index, _NOT_PREPARED)
        if ready is not _NOT_PREPARED:
            return ready  # type: ignore[return-value]
        if self._last[0] == index:
            return self._last[1]
        result: Sample | None = None
        if self._admit(at, subject, principal):
            if body.get("v") != ENTRY_VERSION:
                result = _clear_sample(body, self.rows_per_entry)
            else:
                mine = _claims(body, self.rows_per_entry)
                result = _sample_of(self.opener(mine)) if mine else None
        self._last = (index, result)
        return result

    def admit(self, at: float, subject: str, principal: str) -> bool:
        """Whether the next prediction of (``subject``, ``principal``) at time ``at`` is opened (counted if so).

        Called once per prediction in index order. Most calls find the budget spent and its
        oldest opening still inside the window: they answer at once and change nothing.
        """
        times = self._opened.get((subject, principal))
        if times is not None and len(times) >= self.budget and not times[0] < at - self.window:
            return False
        return self._admit(at, subject, principal)

    def _admit(self, at: float, subject: str, principal: str) -> bool:
        times = self._opened.setdefault((subject, principal), deque())
        while times and times[0] < at - self.window:
            times.popleft()
        if len(times) >= self.budget:
            return False
        times.append(at)
        self.opened_entries += 1
        return True


def rows_to_open(body: dict[str, Any], total: int, limit: int) -> list[int]:
    """Which of an entry's ``total`` rows to read: all when ``limit`` allows, else ``limit`` of them at random.

    Not the first ones: a caller who put ``limit`` ordinary rows at the front of every request
    would hide the rest. The draw is seeded by the entry's first decision id (made by the
    gateway after the request arrived, so a caller cannot aim at it), which keeps a replay
    after a restart reading the same rows.
    """
    if total <= limit:
        return list(range(total))
    ids = body.get("decision_ids")
    seed = str(ids[0]).encode("utf-8", "replace") if isinstance(ids, list) and ids else canonical_json(body)
    draw = random.Random(hashlib.sha256(seed).digest())  # noqa: S311 - a sample, not a secret
    return sorted(draw.sample(range(total), limit))


def _clear_sample(body: dict[str, Any], limit: int) -> Sample | None:
    """Version 1 entries hold inputs and outputs in clear."""
    inputs, outputs = body.get("inputs"), body.get("outputs")
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        return None
    picked = rows_to_open(body, min(len(inputs), len(outputs)), limit)
    return Sample([inputs[i] for i in picked], [outputs[i] for i in picked])


def _claims(body: dict[str, Any], limit: int) -> list[PayloadClaim] | None:
    """Inputs then outputs claims of ``limit`` rows (:func:`rows_to_open`; None when the body is malformed)."""
    ids = body.get("decision_ids")
    if not isinstance(ids, list):
        return None
    picked = rows_to_open(body, len(ids), limit)
    claims: list[PayloadClaim] = []
    try:
        for field in FIELDS:
            hexes = body.get(f"{field}_commitments")
            if not isinstance(hexes, list) or len(hexes) < len(ids):
                return None
            claims += [PayloadClaim(str(ids[i]), field, Commitment.parse(str(hexes[i]))) for i in picked]
    except InvalidInput:
        return None
    return claims


def _sample_of(results: Sequence[OpenResult]) -> Sample | None:
    half = len(results) // 2
    pairs = [(a.value, b.value) for a, b in zip(results[:half], results[half:], strict=True)
             if isinstance(a, Opened) and isinstance(b, Opened)]  # fmt: skip
    if not pairs:
        return None
    return Sample([p[0] for p in pairs], [p[1] for p in pairs])


def workspace_opener(ws: Workspace) -> Opener:
    """Open payloads with the workspace's key ring (erased or tampered ones simply do not open)."""
    ring = privacy_ring(ws)

    def run(claims: Sequence[PayloadClaim]) -> list[OpenResult]:
        with ws.engine.connect() as conn:
            return open_many(conn, ring, claims)

    return run
