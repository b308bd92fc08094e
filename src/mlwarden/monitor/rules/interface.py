"""What a detection rule is: it watches some entry kinds and raises alerts; its settings come from policy.yaml."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from mlwarden.monitor.alert import Alert, Severity, alert_id
from mlwarden.monitor.stream import Light, WatchedEntry


@dataclass(frozen=True, slots=True)
class RuleSettings:
    """The settings every rule has (``alerts.<rule id>`` in policy.yaml) plus its own extras."""

    enabled: bool = True
    threshold: float = 10.0
    window: float = 60.0
    """Seconds."""
    severity: Severity = Severity.MEDIUM
    extra: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: float) -> float:
        """A rule-specific number (already checked by the rules file parser)."""
        return float(self.extra.get(name, default))


class Rule(Protocol):
    """A detection over the entry stream. Deterministic: the same entries give the same alerts.

    Every alert's ``last_index`` is the entry that completed it (alerts of one chunk are
    recorded in that order). A rule may also take a whole chunk at once (:class:`BatchRule`).
    """

    rule_id: str
    kinds: frozenset[str]
    """The entry kinds it observes (the watcher dispatches by kind)."""
    horizon: float
    """Seconds of history its state depends on (replayed after a restart)."""

    def observe(self, entry: WatchedEntry) -> list[Alert]:
        """Take one entry; the alerts it completes."""
        ...

    def raised(self, alert: Alert) -> None:
        """An ``alert.raised`` entry of this rule was read: forget the evidence it covers."""
        ...


@dataclass(frozen=True, slots=True)
class Raised:
    """An ``alert.raised`` entry of this rule, read at ``index``."""

    index: int
    alert: Alert


Item = WatchedEntry | Raised
"""What a rule takes from a chunk, in index order: its parsed entries and its own raised alerts."""
LightPredictions = dict[tuple[str, str], Light]


class BatchRule(Rule, Protocol):
    """A rule that takes a chunk at once, including predictions read only from their header (``light``).

    Only a rule that watches ``prediction`` needs this: when every such rule has it, the
    watcher leaves the predictions no rule opens unparsed and hands them over as columns.
    It must arrive at what :meth:`Rule.observe` and :meth:`Rule.raised` give item by item
    (with each light prediction taken as an entry in its index order).
    """

    def observe_batch(self, items: list[Item], light: LightPredictions) -> list[Alert]:
        """Take a chunk: ``items`` in index order, and the chunk's light predictions; the alerts raised."""
        ...


def observe_each(rule: Rule, items: list[Item]) -> list[Alert]:
    """Items one by one, in index order: a chunk taken the way a rule without a batch method takes it."""
    out: list[Alert] = []
    for item in items:
        if isinstance(item, Raised):
            rule.raised(item.alert)
        else:
            out += rule.observe(item)
    return out


PayloadReader = Callable[[WatchedEntry], Any]


def make_alert(
    rule: str,
    settings: RuleSettings,
    *,
    first: int,
    last: int,
    key: str,
    time: str,
    summary: str,
    principal: str | None = None,
    subject: str | None = None,
    details: dict[str, Any] | None = None,
) -> Alert:
    """An alert with its id derived from the rule, the evidence range and the grouping key."""
    return Alert(
        alert_id=alert_id(rule, first, last, key),
        rule=rule,
        severity=settings.severity,
        summary=summary[:300],
        first_index=first,
        last_index=last,
        time=time,
        principal=principal,
        subject=subject,
        details={"key": key, **(details or {})},
    )


def alert_key(alert: Alert) -> str:
    """The grouping key a rule put in an alert's details."""
    key = (alert.details or {}).get("key")
    return key if isinstance(key, str) else ""
