"""Sliding time windows of weighted events per key: the counting behind every burst rule."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Burst:
    """Events of one key that reached the threshold inside the window."""

    key: str
    first_index: int
    last_index: int
    count: float


@dataclass(slots=True)
class _Events:
    items: deque[tuple[int, float, float]] = field(default_factory=deque)  # (index, at, weight)
    total: float = 0.0


class BurstCounter:
    """Counts events per key over the last ``window`` seconds; a key at ``threshold`` is a burst, then starts over.

    Starting over after a burst (and after :meth:`clear_upto`, when the ledger shows an alert
    already raised over those entries) means one attack raises one alert per ``threshold``
    events, and a watcher replaying the window after a restart arrives at the same state.
    """

    def __init__(self, threshold: float, window: float) -> None:
        self.threshold = threshold
        self.window = window
        self._keys: dict[str, _Events] = {}

    def add(self, key: str, index: int, at: float, weight: float = 1.0) -> Burst | None:
        """Count ``weight`` events of ``key`` at entry ``index``; the burst if the threshold is reached."""
        events = self._keys.get(key)
        if events is None:
            events = self._keys[key] = _Events()
        items = events.items
        items.append((index, at, weight))
        events.total += weight
        horizon = at - self.window
        while items and items[0][1] < horizon:
            events.total -= items.popleft()[2]
        if events.total < self.threshold:
            return None
        burst = Burst(key, items[0][0], index, events.total)
        del self._keys[key]
        return burst

    def total(self, key: str) -> float:
        """The events of ``key`` counted now (for tests and details)."""
        events = self._keys.get(key)
        return 0.0 if events is None else events.total

    def first_index(self, key: str) -> int | None:
        """The oldest counted entry of ``key``."""
        events = self._keys.get(key)
        return events.items[0][0] if events is not None and events.items else None

    def clear_upto(self, key: str, last_index: int) -> None:
        """Forget ``key``'s events at or before ``last_index`` (an alert already covers them)."""
        events = self._keys.get(key)
        if events is None:
            return
        while events.items and events.items[0][0] <= last_index:
            events.total -= events.items.popleft()[2]
        if not events.items:
            del self._keys[key]
