"""Rules over predictions: extraction-like querying, input drift and output shift (on sampled payloads)."""

from __future__ import annotations

import math
from collections import Counter, deque
from typing import Any

import numpy as np

from mlwarden.monitor.alert import Alert
from mlwarden.monitor.binning import BinnedWindow, Distance
from mlwarden.monitor.references import ModelReference, ReferenceBook
from mlwarden.monitor.rules.interface import (
    Item,
    LightPredictions,
    Raised,
    RuleSettings,
    alert_key,
    make_alert,
    observe_each,
)
from mlwarden.monitor.rules.query_pattern import OffShapeTracker, Thresholds, far_from_training, fired_signals
from mlwarden.monitor.rules.volume import PendingLight, RowVolume
from mlwarden.monitor.sampling import PayloadSampler, Sample
from mlwarden.monitor.stream import WatchedEntry, parse_time

EXTRACTION = "inference.extraction"
INPUT_DRIFT = "inference.input_drift"
OUTPUT_SHIFT = "inference.output_shift"
PREDICTION = "prediction"
KS_FACTOR = 1.95
"""KS critical value factor (p about 0.001) for a sample of n rows against the profile: 1.95/sqrt(n)."""


class _Predictions:
    """A rule that reads sampled prediction payloads of models with a training reference."""

    rule_id: str
    kinds = frozenset({PREDICTION})

    def __init__(self, settings: RuleSettings, references: ReferenceBook, sampler: PayloadSampler) -> None:
        self.settings = settings
        self.horizon = settings.window
        self.references = references
        self.sampler = sampler
        self.min_samples = int(settings.get("min_samples", 100))
        self._quiet_until: dict[str, float] = {}
        """Per key: no new alert before this time (one alert per window, not one per refill of it)."""

    def _quiet(self, key: str, at: float) -> bool:
        return at < self._quiet_until.get(key, -math.inf)

    def _hush(self, key: str, at: float) -> None:
        self._quiet_until[key] = at + self.settings.window

    def _hush_alert(self, alert: Alert) -> None:
        self._hush(alert_key(alert), parse_time(alert.time))

    def observe_batch(self, items: list[Item], light: LightPredictions) -> list[Alert]:
        """A chunk: only opened predictions matter here, so the light ones (never opened) are passed over."""
        return observe_each(self, items)  # type: ignore[arg-type]

    def _reference(self, entry: WatchedEntry) -> ModelReference | None:
        name, version = entry.body.get("model"), entry.body.get("version")
        if not isinstance(name, str) or not isinstance(version, int):
            return None
        return self.references.get(name, version)

    def _sampled(self, entry: WatchedEntry) -> tuple[ModelReference, Sample] | None:
        """The entry's opened sample and its model's reference; None (cheaply) when it was not sampled."""
        sample = self.sampler.sample(entry.index, entry.at, entry.subject, entry.principal, entry.body)
        if sample is None:
            return None
        reference = self._reference(entry)
        return None if reference is None else (reference, sample)


def binned(reference: ModelReference, sample: Sample) -> tuple[np.ndarray, float, int]:
    """The sample's bins and out-of-range total under ``reference`` (computed once, shared by the rules)."""
    found = sample.derived.get(reference.model)
    if found is None:
        matrix = sample.derived[f"{reference.model}#matrix"] = reference.matrix(sample.inputs)  # off_shape reuses it
        found = sample.derived[reference.model] = (
            reference.bins(matrix),
            float(reference.out_of_range(matrix).sum()),
            len(matrix),
        )
    return found


def _volume_key(subject: str, principal: str) -> str:
    """Extraction counts and alerts per (model, principal)."""
    return f"{subject}|{principal}"


def _rows(entry: WatchedEntry) -> float:
    ids = entry.body.get("decision_ids")
    return float(len(ids)) if isinstance(ids, list) else 1.0


class Extraction(_Predictions):
    """One principal's high volume on a model together with inputs far from the training profile.

    Volume alone never fires: the sampled inputs must also be far from the training data
    (mean PSI over the features at least ``distance``), spread over the feature ranges'
    edges and beyond (at least ``out_of_range`` of the values outside the training range),
    or off the training rows' correlation structure (at least ``off_shape`` of the rows: see
    :mod:`mlwarden.monitor.rules.query_pattern`).
    """

    rule_id = EXTRACTION

    def __init__(self, settings: RuleSettings, references: ReferenceBook, sampler: PayloadSampler) -> None:
        super().__init__(settings, references, sampler)
        self.volume = RowVolume(settings.window)
        self.windows: dict[str, BinnedWindow] = {}
        self.min_samples = int(settings.get("min_samples", 50))
        self.limits = Thresholds.of(settings)
        self.shapes = OffShapeTracker(settings.window)

    def raised(self, alert: Alert) -> None:
        self._clear(alert_key(alert), alert.last_index)
        self._hush_alert(alert)

    def _clear(self, key: str, last_index: int) -> None:
        self.volume.clear_upto(key, last_index)
        if key in self.windows:
            self.windows[key].clear_upto(last_index)
        self.shapes.clear_upto(key, last_index)

    def observe_batch(self, items: list[Item], light: LightPredictions) -> list[Alert]:
        """A chunk: light predictions only add to their key's volume, counted before the key is next read."""
        pending = PendingLight(light, _volume_key, self.volume)
        out: list[Alert] = []
        for item in items:
            if isinstance(item, Raised):
                pending.upto(alert_key(item.alert), item.index)
                self.raised(item.alert)
            else:
                pending.upto(_volume_key(item.subject, item.principal), item.index)
                out += self.observe(item)
        pending.rest()
        return out

    def observe(self, entry: WatchedEntry) -> list[Alert]:
        key = _volume_key(entry.subject, entry.principal)
        self.volume.add(key, entry.index, entry.at, _rows(entry))
        sampled = self._sampled(entry)
        if sampled is None:
            return []
        reference, sample = sampled
        window = self.windows.get(key)
        if window is None:
            window = self.windows[key] = BinnedWindow(reference, self.settings.window)
        window.add(entry.index, entry.at, *binned(reference, sample))
        self.shapes.add(key, entry.index, entry.at, reference, sample)
        volume = self.volume.total(key)
        if volume < self.settings.threshold or window.rows < self.min_samples or self._quiet(key, entry.at):
            return []
        d = window.distance(self.limits.distance, KS_FACTOR / math.sqrt(window.rows))
        off = self.shapes.share(key)
        signals = fired_signals(self.limits, d, off)
        if not signals:
            return []
        first = min(self.volume.first_index(key) or entry.index, window.first_index() or entry.index)
        self._clear(key, entry.index)
        summary = (
            f"{entry.principal} sent {volume:g} rows to {entry.subject} within {self.settings.window:g}s, "
            f"far from the training data ({far_from_training(d, off, signals)})"
        )
        return [self._alert(entry, key, first, summary, volume, d, off, signals)]

    def _alert(self, entry: WatchedEntry, key: str, first: int, summary: str, volume: float, d: Distance,
               off: float | None, signals: list[str]) -> Alert:  # fmt: skip
        return make_alert(
            self.rule_id, self.settings, first=first, last=entry.index, key=key, time=entry.time, summary=summary,
            principal=entry.principal, subject=entry.subject,
            details={"rows": volume, "sampled_rows": d.rows, "psi_mean": round(d.psi_mean, 4),
                     "out_of_range": round(d.out_of_range, 4), "signals": signals,
                     "off_shape": None if off is None else round(off, 4)},
        )  # fmt: skip


class InputDrift(_Predictions):
    """A model's sampled inputs (all callers) drift from its training profile: PSI and KS per feature."""

    rule_id = INPUT_DRIFT

    def __init__(self, settings: RuleSettings, references: ReferenceBook, sampler: PayloadSampler) -> None:
        super().__init__(settings, references, sampler)
        self.windows: dict[str, BinnedWindow] = {}
        self.min_features = int(settings.get("min_features", 1))

    def raised(self, alert: Alert) -> None:
        window = self.windows.get(alert_key(alert))
        if window is not None:
            window.clear_upto(alert.last_index)
        self._hush_alert(alert)

    def observe(self, entry: WatchedEntry) -> list[Alert]:
        sampled = self._sampled(entry)
        if sampled is None:
            return []
        reference, sample = sampled
        window = self.windows.get(entry.subject)
        if window is None:
            window = self.windows[entry.subject] = BinnedWindow(reference, self.settings.window)
        window.add(entry.index, entry.at, *binned(reference, sample))
        if window.rows < self.min_samples or self._quiet(entry.subject, entry.at):
            return []
        d = window.distance(self.settings.threshold, KS_FACTOR / math.sqrt(window.rows))
        if len(d.drifted) < self.min_features:
            return []
        first = window.first_index() or entry.index
        window.clear_upto(entry.index)
        self._hush(entry.subject, entry.at)
        shown = ", ".join(d.drifted[:5]) + (" …" if len(d.drifted) > 5 else "")
        return [
            make_alert(
                self.rule_id, self.settings, first=first, last=entry.index, key=entry.subject, time=entry.time,
                summary=f"inputs of {entry.subject} drift from {reference.dataset} in {len(d.drifted)} feature(s): "
                f"{shown} (max PSI {d.psi_max:.2f})",
                subject=entry.subject,
                details={"drifted": list(d.drifted[:10]), "drifted_count": len(d.drifted),
                         "psi_max": round(d.psi_max, 4), "ks_max": round(d.ks_max, 4),
                         "sampled_rows": d.rows, "dataset": reference.dataset},
            )
        ]  # fmt: skip


class OutputShift(_Predictions):
    """A model's sampled predicted classes move away from the class rates of its training labels."""

    rule_id = OUTPUT_SHIFT

    def __init__(self, settings: RuleSettings, references: ReferenceBook, sampler: PayloadSampler) -> None:
        super().__init__(settings, references, sampler)
        self.windows: dict[str, deque[tuple[int, float, list[str]]]] = {}
        self.counts: dict[str, Counter[str]] = {}

    def raised(self, alert: Alert) -> None:
        self._clear(alert_key(alert), alert.last_index)
        self._hush_alert(alert)

    def _clear(self, key: str, last_index: int) -> None:
        window, counts = self.windows.get(key), self.counts.get(key)
        while window and counts is not None and window[0][0] <= last_index:
            counts.subtract(window.popleft()[2])

    def observe(self, entry: WatchedEntry) -> list[Alert]:
        sampled = self._sampled(entry)
        if sampled is None or not sampled[0].class_rates:
            return []
        reference, sample = sampled
        labels = [label for label in map(_label, sample.outputs) if label is not None]
        window = self.windows.setdefault(entry.subject, deque())
        counts = self.counts.setdefault(entry.subject, Counter())
        window.append((entry.index, entry.at, labels))
        counts.update(labels)
        while window and window[0][1] < entry.at - self.settings.window:
            counts.subtract(window.popleft()[2])
        total = sum(counts.values())
        if total < self.min_samples or self._quiet(entry.subject, entry.at):
            return []
        rates = {k: v / total for k, v in counts.items() if v > 0}
        expected = reference.class_rates
        distance = 0.5 * sum(abs(rates.get(k, 0.0) - expected.get(k, 0.0)) for k in {*rates, *expected})
        if distance < self.settings.threshold:
            return []
        first = window[0][0]
        self._clear(entry.subject, entry.index)
        self._hush(entry.subject, entry.at)
        shown = ", ".join(f"{k}: {rates.get(k, 0):.0%} (training {expected.get(k, 0):.0%})"
                          for k in sorted({*rates, *expected})[:6])  # fmt: skip
        return [
            make_alert(
                self.rule_id, self.settings, first=first, last=entry.index, key=entry.subject, time=entry.time,
                summary=f"predicted classes of {entry.subject} moved from the training rates: {shown}",
                subject=entry.subject,
                details={"distance": round(distance, 4), "rates": {k: round(v, 4) for k, v in rates.items()},
                         "baseline": expected, "sampled_rows": total, "dataset": reference.dataset},
            )
        ]  # fmt: skip


def _label(output: Any) -> str | None:
    """The predicted class of one output row (``label`` of an object, or the row itself)."""
    value = output.get("label", next(iter(output.values()), None)) if isinstance(output, dict) else output
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool | int | str) or (isinstance(value, float) and value.is_integer()):
        return str(int(value)) if isinstance(value, float | bool) else str(value)
    return None
