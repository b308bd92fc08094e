"""Rows counted per key over a sliding time window, taken one entry at a time or a run of entries at once.

:class:`RowVolume` keeps exactly the state a ``BurstCounter`` with no threshold keeps (the
same events counted, forgotten at the same moments), so a rule may count a chunk's light
predictions in bulk and its parsed entries one by one, in any mix, and read the same totals.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field

from mlwarden.monitor.stream import Light

_COMPACT = 4096
"""Forgotten events kept at the head of a key's lists before they are cut off."""


@dataclass(slots=True)
class _Run:
    """One key's events (index, time, weight) as parallel lists; ``head`` is the first one still counted."""

    index: list[int] = field(default_factory=list)
    at: list[float] = field(default_factory=list)
    weight: list[float] = field(default_factory=list)
    head: int = 0
    total: float = 0.0
    ordered: bool = True
    """Whether ``at`` never decreases (then the window's edge is found by bisection)."""

    def forget_before(self, horizon: float) -> None:
        """Forget events from the head while their time is before ``horizon`` (what each add does)."""
        at, head = self.at, self.head
        if self.ordered:
            cut = bisect_left(at, horizon, head)
        else:
            cut = head
            while cut < len(at) and at[cut] < horizon:
                cut += 1
        if cut > head:
            self.total -= sum(self.weight[head:cut])
            self.head = cut
            self._compact()

    def _compact(self) -> None:
        if self.head > _COMPACT and self.head * 2 > len(self.at):
            del self.index[: self.head], self.at[: self.head], self.weight[: self.head]
            self.head = 0


class RowVolume:
    """Weighted events (row counts) per key in the last ``window`` seconds; nothing is ever a burst.

    Weights are counts (whole numbers), so a total is exact whatever order it was summed in.
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self._keys: dict[str, _Run] = {}

    def add(self, key: str, index: int, at: float, weight: float = 1.0) -> None:
        """Count ``weight`` at entry ``index`` (time ``at``), then forget what is older than the window."""
        self.extend(key, [index], [at], [weight])

    def extend(self, key: str, indices: list[int], ats: list[float], weights: list[float]) -> None:
        """Count a run of entries of ``key`` in index order: the same state as :meth:`add` for each in turn."""
        if not indices:
            return
        run = self._keys.get(key)
        if run is None:
            run = self._keys[key] = _Run()
        if len(ats) > 1 and sorted(ats) != ats:  # a clock step back in the run: forget as add after add would
            for i, a, w in zip(indices, ats, weights, strict=True):
                self._append(run, [i], [a], [w])
                run.forget_before(a - self.window)
            return
        self._append(run, indices, ats, weights)
        run.forget_before(ats[-1] - self.window)  # times never decrease in the run: one cut is every add's cut

    @staticmethod
    def _append(run: _Run, indices: list[int], ats: list[float], weights: list[float]) -> None:
        if run.ordered and run.at and ats[0] < run.at[-1]:
            run.ordered = False
        run.index += indices
        run.at += ats
        run.weight += weights
        run.total += sum(weights)

    def total(self, key: str) -> float:
        """The weight of ``key``'s events counted now."""
        run = self._keys.get(key)
        return 0.0 if run is None else run.total

    def first_index(self, key: str) -> int | None:
        """The oldest counted entry of ``key``."""
        run = self._keys.get(key)
        return run.index[run.head] if run is not None and run.head < len(run.index) else None

    def clear_upto(self, key: str, last_index: int) -> None:
        """Forget ``key``'s events at or before ``last_index`` (an alert already covers them)."""
        run = self._keys.get(key)
        if run is None:
            return
        cut = run.head
        while cut < len(run.index) and run.index[cut] <= last_index:
            cut += 1
        run.total -= sum(run.weight[run.head : cut])
        run.head = cut
        if cut == len(run.index):
            del self._keys[key]
        else:
            run._compact()


class PendingLight:
    """A chunk's light predictions regrouped under a rule's key, counted into a :class:`RowVolume` when due.

    A key's predictions before index ``i`` are counted just before the rule reads or clears
    that key at entry ``i`` (:meth:`upto`), the rest at the end of the chunk (:meth:`rest`):
    each key's events arrive in index order, as if every prediction had been added in turn.
    """

    def __init__(
        self, light: dict[tuple[str, str], Light], key_of: Callable[[str, str], str], volume: RowVolume
    ) -> None:
        self.volume = volume
        self.groups: dict[str, Light] = {}
        self._done: dict[str, int] = {}
        merged: dict[str, list[Light]] = {}
        for (subject, principal), group in light.items():
            merged.setdefault(key_of(subject, principal), []).append(group)
        for key, groups in merged.items():
            self.groups[key] = groups[0] if len(groups) == 1 else _merge(groups)

    def upto(self, key: str, index: int) -> None:
        """Count ``key``'s light predictions before entry ``index`` (not counted yet)."""
        group = self.groups.get(key)
        if group is None:
            return
        done = self._done.get(key, 0)
        end = bisect_left(group.index, index, done)
        if end > done:
            self.volume.extend(key, group.index[done:end], group.at[done:end], group.rows[done:end])
            self._done[key] = end

    def rest(self) -> None:
        """Count every light prediction not counted yet (the end of the chunk)."""
        for key, group in self.groups.items():
            self.upto(key, group.index[-1] + 1)


def _merge(groups: list[Light]) -> Light:
    """Several groups' predictions in one index order."""
    index = [i for g in groups for i in g.index]
    at = [a for g in groups for a in g.at]
    rows = [r for g in groups for r in g.rows]
    order = sorted(range(len(index)), key=index.__getitem__)
    return Light([index[i] for i in order], [at[i] for i in order], [rows[i] for i in order])
