"""Detection rules over the ledger stream; :func:`build_rules` makes the enabled set from the rules file."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from mlwarden.monitor.alert import ALERT_RAISED, Alert
from mlwarden.monitor.references import ReferenceBook
from mlwarden.monitor.rules.bursts import AccessDeniedBurst, AuthFailureBurst, CustomThreshold
from mlwarden.monitor.rules.events import FeedbackSpike, GovernanceEvent, LedgerIntegrity
from mlwarden.monitor.rules.inference import Extraction, InputDrift, OutputShift
from mlwarden.monitor.rules.interface import BatchRule, Item, Raised, Rule, RuleSettings, observe_each
from mlwarden.monitor.sampling import Opener, PayloadSampler
from mlwarden.monitor.stream import PREDICTION, EntryBatch, ReadPlan, WatchedEntry

__all__ = ["BatchRule", "Rule", "RuleSet", "RuleSettings", "build_rules"]


@dataclass
class RuleSet:
    """The enabled rules, indexed by the kinds they observe."""

    rules: list[Rule]
    by_kind: dict[str, list[Rule]] = field(default_factory=dict)
    patterns: list[CustomThreshold] = field(default_factory=list)
    by_id: dict[str, Rule] = field(default_factory=dict)
    sampler: PayloadSampler | None = None
    _kind_cache: dict[str, list[Rule]] = field(default_factory=dict)
    _observers: dict[str, list[Callable[[WatchedEntry], list[Alert]]]] = field(default_factory=dict)
    _watched: dict[str, bool] = field(default_factory=dict)
    _rank: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for rule in self.rules:
            self.by_id[rule.rule_id] = rule
            if isinstance(rule, CustomThreshold) and rule.pattern:
                self.patterns.append(rule)
            for kind in rule.kinds:
                self.by_kind.setdefault(kind, []).append(rule)
        self._rank = {id(rule): rank for rank, rule in enumerate(self.rules)}

    @property
    def horizon(self) -> float:
        """Seconds of history the rules' state depends on."""
        return max((rule.horizon for rule in self.rules), default=0.0)

    def for_kind(self, kind: str) -> list[Rule]:
        """The rules that observe ``kind``, in the order of :attr:`rules`."""
        found = self._kind_cache.get(kind)
        if found is None:
            found = list(self.by_kind.get(kind, ())) + [r for r in self.patterns if r.matches_kind(kind)]
            found.sort(key=lambda rule: self._rank[id(rule)])
            self._kind_cache[kind] = found
        return found

    def watches(self, kind: str) -> bool:
        """Whether any rule observes ``kind`` (``alert.raised`` always: it tells rules what is covered)."""
        found = self._watched.get(kind)
        if found is None:
            found = self._watched[kind] = kind == ALERT_RAISED or bool(self.for_kind(kind))
        return found

    @property
    def plan(self) -> ReadPlan:
        """What to read of a chunk: predictions stay light when every rule watching them takes a batch."""
        light = all(callable(getattr(rule, "observe_batch", None)) for rule in self.for_kind(PREDICTION))
        admit = self.sampler.admit if self.sampler is not None else None
        return ReadPlan(self.watches, light_predictions=light, admit=admit)

    # ------------------------------------------------------------------ a chunk at once
    def observe_batch(self, batch: EntryBatch) -> list[Alert]:
        """Every rule takes its part of a chunk; the alerts raised, in the order entry by entry would give."""
        if self.sampler is not None:
            self.sampler.open(batch.entries, batch.admitted)
        items: list[list[Item]] = [[] for _ in self.rules]
        for entry in batch.entries:
            if entry.kind == ALERT_RAISED:
                self._route_raised(items, entry)
                continue
            for rule in self.for_kind(entry.kind):
                items[self._rank[id(rule)]].append(entry)
        found: list[tuple[int, int, Alert]] = []
        for rank, rule in enumerate(self.rules):
            take = getattr(rule, "observe_batch", None)
            if take is not None:
                got: list[Alert] = take(items[rank], batch.light)
            elif items[rank]:
                got = observe_each(rule, items[rank])
            else:
                continue
            found += [(alert.last_index, rank, alert) for alert in got]
        found.sort(key=lambda x: (x[0], x[1]))  # stable: one rule's alerts of one entry keep their order
        return [alert for _index, _rank, alert in found]

    def _route_raised(self, items: list[list[Item]], entry: WatchedEntry) -> None:
        """An ``alert.raised`` entry goes to the rule that raised it (a malformed one to none)."""
        with contextlib.suppress(KeyError, ValueError, TypeError):
            alert = Alert.from_dict(entry.body)
            rule = self.by_id.get(alert.rule)
            if rule is not None:
                items[self._rank[id(rule)]].append(Raised(entry.index, alert))

    # ------------------------------------------------------------------ entry by entry (the reference)
    def prepare(self, entries: list[WatchedEntry]) -> None:
        """Open the sampled payloads of a batch of entries at once (before they are observed one by one)."""
        if self.sampler is not None:
            self.sampler.prepare(entries)

    def observe(self, entry: WatchedEntry) -> list[Alert]:
        """Every rule that watches this entry's kind takes it; the alerts they raise."""
        observers = self._observers.get(entry.kind)
        if observers is None:  # once per kind: the bound methods, so an entry costs one call per rule
            observers = self._observers[entry.kind] = [rule.observe for rule in self.for_kind(entry.kind)]
        out: list[Alert] = []
        for observe in observers:
            found = observe(entry)
            if found:
                out += found
        return out

    def raised(self, alert: Alert) -> None:
        """An ``alert.raised`` entry was read: its rule forgets the evidence it covers."""
        rule = self.by_id.get(alert.rule)
        if rule is not None:
            rule.raised(alert)


def build_rules(config: object, references: ReferenceBook, opener: Opener) -> RuleSet:
    """The enabled rules of a :class:`~mlwarden.monitor.rules_file.RulesConfig`."""
    from mlwarden.monitor.rules_file import RulesConfig

    if not isinstance(config, RulesConfig):
        raise TypeError("build_rules needs a RulesConfig")
    s = config.sampling
    sampler = PayloadSampler(opener, budget=s.budget, window=s.window, rows_per_entry=s.rows_per_entry)
    b = config.builtin
    made: list[Rule] = [
        AuthFailureBurst(b["auth.failure_burst"]),
        AccessDeniedBurst(b["access.denied_burst"]),
        Extraction(b["inference.extraction"], references, sampler),
        InputDrift(b["inference.input_drift"], references, sampler),
        OutputShift(b["inference.output_shift"], references, sampler),
        FeedbackSpike(b["feedback.spike"]),
        GovernanceEvent(b["governance.event"]),
        LedgerIntegrity(b["ledger.integrity"]),
    ]
    rules = [r for r in made if r.settings.enabled]  # type: ignore[attr-defined]
    rules += [CustomThreshold(spec, settings, frozenset()) for spec, settings in config.custom if settings.enabled]
    return RuleSet(rules, sampler=sampler)
