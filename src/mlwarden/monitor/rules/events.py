"""Rules over single events (governance, integrity) and the feedback spike."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from mlwarden.monitor.alert import Alert
from mlwarden.monitor.rules.interface import Item, LightPredictions, Raised, RuleSettings, alert_key, make_alert
from mlwarden.monitor.rules.volume import PendingLight, RowVolume
from mlwarden.monitor.stream import UNREADABLE, WatchedEntry
from mlwarden.monitor.windows import BurstCounter

GOVERNANCE = "governance.event"
INTEGRITY = "ledger.integrity"
FEEDBACK = "feedback.spike"

_GOVERNANCE_KINDS = {
    "model.stage_tampered": "a stage changed outside the gates",
    "model.promotion_refused": "a promotion was refused",
    "model.approval_refused": "an approval was refused (self-approval or unauthorised approver)",
    "data.batch_released": "a quarantined batch was released",
    "data.release_refused": "a quarantined batch release was refused",
}
_INTEGRITY_KINDS = {
    "ledger.index_tampered": "a reference points at the wrong ledger entry",
    "ledger.verify_failed": "a ledger verification failed",
    "ledger.rollback_found": "a checkpoint rollback was found",
    "model.integrity_failed": "a model row disagrees with its ledger entry",
    "dataset.integrity_failed": "a dataset row disagrees with its ledger entry",
}


class _Single:
    """One alert per matching entry (keyed by its index, so it is raised once)."""

    rule_id: str
    kinds: frozenset[str]
    horizon = 0.0

    def __init__(self, settings: RuleSettings) -> None:
        self.settings = settings

    def raised(self, alert: Alert) -> None:
        return None

    def _alert(self, entry: WatchedEntry, summary: str) -> list[Alert]:
        return [
            make_alert(
                self.rule_id, self.settings, first=entry.index, last=entry.index, key=f"{entry.kind}@{entry.index}",
                time=entry.time, summary=summary, principal=entry.principal, subject=entry.subject,
                details={"kind": entry.kind},
            )
        ]  # fmt: skip


class GovernanceEvent(_Single):
    """Stages changed outside the gates, refused promotions or approvals, released batches, admin tokens, waivers."""

    rule_id = GOVERNANCE
    kinds = frozenset({*_GOVERNANCE_KINDS, "token.created", "gate.run"})

    def observe(self, entry: WatchedEntry) -> list[Alert]:
        what = _GOVERNANCE_KINDS.get(entry.kind)
        if what is not None:
            return self._alert(entry, f"{what}: {entry.subject} by {entry.principal}")
        if entry.kind == "token.created" and "admin" in _strings(entry.body.get("scopes")):
            return self._alert(entry, f"a token with admin scope was created ({entry.subject}) by {entry.principal}")
        if entry.kind == "gate.run":
            return self._waivers(entry)
        return []

    def _waivers(self, entry: WatchedEntry) -> list[Alert]:
        """A gate run that used waivers: one alert, saying which expire within ``waiver_warning_days`` of the run."""
        results = _dicts(entry.body.get("results"))
        waived = [w for r in results for w in _strings(_details(r).get("waived"))]
        if not waived:
            return []
        summary = f"{len(waived)} waiver(s) used in a gate run of {entry.subject}"
        warning_days = self.settings.get("waiver_warning_days", 14)
        expiring = sorted(
            (days, str(used.get("finding")), when)
            for r in results
            for used in _dicts(_details(r).get("waivers_used"))
            if (when := _instant(used.get("expires"))) is not None
            and (days := (when.timestamp() - entry.at) / 86_400) <= warning_days
        )
        if not expiring:
            return self._alert(entry, summary)
        days, finding, when = expiring[0]
        soonest = f"{finding} expires {when:%Y-%m-%d} (in {max(days, 0.0):.0f} days)"
        more = f" and {len(expiring) - 1} more within {warning_days:g} days" if len(expiring) > 1 else ""
        [alert] = self._alert(entry, f"{summary}; about to expire: {soonest}{more}")
        details = {
            **(alert.details or {}),
            "waivers_expiring": [
                {"finding": f, "expires": w.isoformat(), "days_left": round(d, 1)} for d, f, w in expiring
            ],
        }
        return [replace(alert, details=details)]  # fmt: skip


class LedgerIntegrity(_Single):
    """A verification failed, a rollback or a tampered reference was found, or an entry cannot be read."""

    rule_id = INTEGRITY
    kinds = frozenset({*_INTEGRITY_KINDS, UNREADABLE})

    def observe(self, entry: WatchedEntry) -> list[Alert]:
        what = _INTEGRITY_KINDS.get(entry.kind) or str(entry.body.get("problem", "an entry cannot be read"))
        return self._alert(entry, f"{what}: {entry.subject}")


class FeedbackSpike:
    """Flags on one model's decisions: at least ``threshold`` in ``window`` and ``min_rate`` of its decisions."""

    rule_id = FEEDBACK
    kinds = frozenset({"feedback", "prediction"})

    def __init__(self, settings: RuleSettings) -> None:
        self.settings = settings
        self.horizon = settings.window
        self.min_rate = settings.get("min_rate", 0.05)
        self.flags = BurstCounter(float("inf"), settings.window)
        self.decisions = RowVolume(settings.window)

    def raised(self, alert: Alert) -> None:
        self.flags.clear_upto(alert_key(alert), alert.last_index)

    def observe_batch(self, items: list[Item], light: LightPredictions) -> list[Alert]:
        """A chunk: light predictions only add to their model's decisions, counted before a flag reads them."""
        pending = PendingLight(light, _model, self.decisions)
        out: list[Alert] = []
        for item in items:
            if isinstance(item, Raised):
                self.raised(item.alert)
            else:
                pending.upto(item.subject, item.index)
                out += self.observe(item)
        pending.rest()
        return out

    def observe(self, entry: WatchedEntry) -> list[Alert]:
        model = entry.subject
        if entry.kind == "prediction":
            ids = entry.body.get("decision_ids")
            self.decisions.add(model, entry.index, entry.at, float(len(ids)) if isinstance(ids, list) else 1.0)
            return []
        self.flags.add(model, entry.index, entry.at)
        flags, decisions = self.flags.total(model), self.decisions.total(model)
        rate = flags / max(decisions, 1.0)
        if flags < self.settings.threshold or rate < self.min_rate:
            return []
        first = self.flags.first_index(model) or entry.index
        self.flags.clear_upto(model, entry.index)
        return [
            make_alert(
                self.rule_id, self.settings, first=first, last=entry.index, key=model, time=entry.time,
                summary=f"{flags:g} feedback flags on {model} within {self.settings.window:g}s "
                f"({rate:.1%} of {decisions:g} decisions)",
                subject=model, details={"flags": flags, "decisions": decisions, "rate": round(rate, 4)},
            )
        ]  # fmt: skip


def _model(subject: str, _principal: str) -> str:
    """Feedback spikes are per model (the subject of its predictions and flags)."""
    return subject


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _instant(value: Any) -> datetime | None:
    """An ISO date-time (a naive one read as UTC), or None."""
    if not isinstance(value, str):
        return None
    try:
        found = datetime.fromisoformat(value)
    except ValueError:
        return None
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


def _details(result: dict[str, Any]) -> dict[str, Any]:
    details = result.get("details")
    return details if isinstance(details, dict) else {}
