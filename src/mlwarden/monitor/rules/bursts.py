"""Counting rules: failed authentications, policy denials, and custom thresholds over any kind."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from mlwarden.monitor.alert import Alert
from mlwarden.monitor.rules.interface import RuleSettings, alert_key, make_alert
from mlwarden.monitor.stream import WatchedEntry
from mlwarden.monitor.windows import Burst, BurstCounter

AUTH_FAILURE = "auth.failure_burst"
ACCESS_DENIED = "access.denied_burst"
REJECTED = "request.rejected"
REJECTED_SUMMARY = "request.rejected_summary"
DENIED = "access.denied"


class _Counting:
    """A rule that counts keyed events in a window and alerts on a burst."""

    rule_id: str
    kinds: frozenset[str]

    def __init__(self, settings: RuleSettings) -> None:
        self.settings = settings
        self.horizon = settings.window
        self.counter = BurstCounter(settings.threshold, settings.window)

    def raised(self, alert: Alert) -> None:
        self.counter.clear_upto(alert_key(alert), alert.last_index)

    def _alert(self, burst: Burst, entry: WatchedEntry, summary: str, **who: str | None) -> Alert:
        return make_alert(
            self.rule_id, self.settings, first=burst.first_index, last=burst.last_index, key=burst.key,
            time=entry.time, summary=summary, details={"count": burst.count, "window_s": self.settings.window},
            **who,
        )  # fmt: skip


class AuthFailureBurst(_Counting):
    """Many failed authentications from one claimed principal or one source address in a window.

    Unauthenticated rejections are summed by the gateway into ``request.rejected_summary``
    entries (counts by claimed principal and source address); only their 401s count here.
    """

    rule_id = AUTH_FAILURE
    kinds = frozenset({REJECTED, REJECTED_SUMMARY})

    def observe(self, entry: WatchedEntry) -> list[Alert]:
        body = entry.body
        if entry.kind == REJECTED:
            return self._count(entry, f"principal:{entry.principal}", 1.0) if body.get("status") == 401 else []
        statuses = body.get("statuses")
        failures = _number(statuses.get("401")) if isinstance(statuses, dict) else 0.0
        if failures <= 0:
            return []
        out: list[Alert] = []
        for field, prefix in (("claimed_principals", "principal"), ("sources", "source")):
            counts = body.get(field)
            for name, count in counts.items() if isinstance(counts, dict) else ():
                if name in ("(other)", "anonymous", ""):
                    continue
                out += self._count(entry, f"{prefix}:{name}", min(_number(count), failures))
        return out

    def _count(self, entry: WatchedEntry, key: str, weight: float) -> list[Alert]:
        burst = self.counter.add(key, entry.index, entry.at, weight)
        if burst is None:
            return []
        kind, _, name = key.partition(":")
        summary = f"{burst.count:g} failed authentications from {kind} {name} within {self.settings.window:g}s"
        principal = name if kind == "principal" else None
        return [self._alert(burst, entry, summary, principal=principal, subject=key)]


class AccessDeniedBurst(_Counting):
    """Many policy denials for one principal in a window (scope or model probing)."""

    rule_id = ACCESS_DENIED
    kinds = frozenset({DENIED})

    def observe(self, entry: WatchedEntry) -> list[Alert]:
        burst = self.counter.add(entry.principal, entry.index, entry.at)
        if burst is None:
            return []
        summary = f"{burst.count:g} policy denials for {entry.principal} within {self.settings.window:g}s"
        return [self._alert(burst, entry, summary, principal=entry.principal, subject=entry.subject)]


@dataclass(frozen=True, slots=True)
class CustomSpec:
    """A custom threshold rule: which entries count, how they are grouped."""

    rule_id: str
    kind: str
    """An entry kind, or a pattern with ``*`` (``request.*``)."""
    principal: str | None = None
    subject_prefix: str | None = None
    body: tuple[tuple[str, Any], ...] = ()
    group_by: str = "principal"
    """``principal``, ``subject`` or ``none``."""


class CustomThreshold(_Counting):
    """``threshold`` matching entries (per group) within ``window`` seconds."""

    def __init__(self, spec: CustomSpec, settings: RuleSettings, known_kinds: frozenset[str]) -> None:
        super().__init__(settings)
        self.spec = spec
        self.rule_id = spec.rule_id
        self.pattern = "*" in spec.kind
        self.kinds = frozenset({spec.kind}) if not self.pattern else frozenset()
        self.known_kinds = known_kinds

    def matches_kind(self, kind: str) -> bool:
        """Whether entries of ``kind`` are counted (patterns match lazily, kind by kind)."""
        return fnmatch.fnmatchcase(kind, self.spec.kind) if self.pattern else kind == self.spec.kind

    def observe(self, entry: WatchedEntry) -> list[Alert]:
        spec = self.spec
        if spec.principal is not None and entry.principal != spec.principal:
            return []
        if spec.subject_prefix is not None and not entry.subject.startswith(spec.subject_prefix):
            return []
        if any(entry.body.get(k) != v for k, v in spec.body):
            return []
        key = {"principal": entry.principal, "subject": entry.subject}.get(spec.group_by, "*")
        burst = self.counter.add(key, entry.index, entry.at)
        if burst is None:
            return []
        summary = f"{burst.count:g} {spec.kind} entries for {key} within {self.settings.window:g}s"
        return [self._alert(burst, entry, summary, principal=entry.principal, subject=entry.subject)]


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
