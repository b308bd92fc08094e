"""Opening a bounded sample of sealed prediction payloads for the inference rules.

The watcher holds the workspace keys, but decrypting every prediction would cap detection
far below the ledger's rate. Per (model, principal) it opens at most ``budget`` entries in
any ``window`` seconds, and at most ``rows_per_entry`` rows of each: enough for PSI and class
rates, and deterministic (the same entries give the same sample after a restart).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mlwarden.errors import InvalidInput
from mlwarden.privacy import Commitment, Opened, OpenResult, PayloadClaim, open_many
from mlwarden.privacy.scopes import FIELDS
from mlwarden.subjects.sealing import ENTRY_VERSION, privacy_ring
from mlwarden.workspace import Workspace

Opener = Callable[[Sequence[PayloadClaim]], list[OpenResult]]


@dataclass(frozen=True, slots=True)
class Sample:
    """The opened rows of one prediction entry (only rows whose inputs and outputs both opened)."""

    inputs: list[Any]
    outputs: list[Any]


class PayloadSampler:
    """Decides which prediction entries to open, opens them, and remembers the result for the entry."""

    def __init__(self, opener: Opener, *, budget: int = 200, window: float = 300.0, rows_per_entry: int = 16) -> None:
        self.opener = opener
        self.budget = budget
        self.window = window
        self.rows_per_entry = rows_per_entry
        self._opened: dict[tuple[str, str], deque[float]] = {}
        self._last: tuple[int, Sample | None] = (-1, None)
        self.opened_entries = 0

    def sample(self, index: int, at: float, subject: str, principal: str, body: dict[str, Any]) -> Sample | None:
        """The sample of this entry, or None when the budget is spent (asked twice: the same answer)."""
        if self._last[0] == index:
            return self._last[1]
        result = self._take(at, subject, principal, body)
        self._last = (index, result)
        return result

    def _take(self, at: float, subject: str, principal: str, body: dict[str, Any]) -> Sample | None:
        times = self._opened.setdefault((subject, principal), deque())
        while times and times[0] < at - self.window:
            times.popleft()
        if len(times) >= self.budget:
            return None
        times.append(at)
        self.opened_entries += 1
        if body.get("v") != ENTRY_VERSION:  # version 1: recorded in clear
            inputs, outputs = body.get("inputs"), body.get("outputs")
            if not isinstance(inputs, list) or not isinstance(outputs, list):
                return None
            n = min(len(inputs), len(outputs), self.rows_per_entry)
            return Sample(inputs[:n], outputs[:n])
        return self._open(body)

    def _open(self, body: dict[str, Any]) -> Sample | None:
        ids = body.get("decision_ids")
        if not isinstance(ids, list):
            return None
        n = min(len(ids), self.rows_per_entry)
        claims: list[PayloadClaim] = []
        try:
            for field in FIELDS:
                hexes = body.get(f"{field}_commitments")
                if not isinstance(hexes, list) or len(hexes) < n:
                    return None
                claims += [PayloadClaim(str(ids[i]), field, Commitment.parse(str(hexes[i]))) for i in range(n)]
        except InvalidInput:
            return None
        results = self.opener(claims)
        inputs, outputs = results[:n], results[n:]
        pairs = [(a.value, b.value) for a, b in zip(inputs, outputs, strict=True)
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
