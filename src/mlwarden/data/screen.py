"""Screening a batch against the reference data: drift, outliers, label flips, backdoor triggers, duplicate floods.

Each check returns the rows it flags and, when the batch as a whole looks wrong, a reason.
A batch with any reason is quarantined.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

PSI_LIMIT = 0.25
OUTLIER_SHARE_LIMIT = 0.03
FLIP_AGREEMENT = 0.3
"""A row is flagged when neither reference judge gives its label more than this."""
FLIP_DECISIVE = 0.1
"""The batch decision counts only rows both judges contradict this strongly (and compares with the reference)."""
FLIP_SURPRISE = 0.01
"""Quarantine when this many contradicted labels would happen by chance less than 1% of the time."""
DUPLICATE_SHARE_LIMIT = 0.05
TRIGGER_PURITY = 0.95
TRIGGER_MIN_ROWS = 5


@dataclass(slots=True)
class ScreenReport:
    """What screening found: reasons to quarantine, flagged rows per check, and the measurements."""

    reasons: list[str] = field(default_factory=list)
    flagged: dict[str, list[int]] = field(default_factory=dict)
    drift: dict[str, dict[str, float]] = field(default_factory=dict)
    measured: dict[str, Any] = field(default_factory=dict)

    @property
    def flagged_rows(self) -> list[int]:
        return sorted({r for rows in self.flagged.values() for r in rows})

    def to_json(self) -> dict[str, Any]:
        return {"reasons": self.reasons, "flagged": self.flagged, "drift": self.drift, "measured": self.measured}


def _numeric_columns(reference: pl.DataFrame, batch: pl.DataFrame, label: str | None) -> list[str]:
    return [
        c
        for c, t in reference.schema.items()
        if t.is_numeric() and c != label and c in batch.columns and batch.schema[c].is_numeric()
    ]


def psi(reference: np.ndarray, batch: np.ndarray, bins: int = 10) -> float:
    """Population stability index over the reference's quantile bins."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if len(edges) < 3:
        edges = np.unique(np.concatenate([edges, [edges[0] - 1, edges[-1] + 1]]))
    edges[0], edges[-1] = -np.inf, np.inf
    ref = np.histogram(reference, edges)[0] / max(len(reference), 1)
    cur = np.histogram(batch, edges)[0] / max(len(batch), 1)
    ref, cur = np.clip(ref, 1e-4, None), np.clip(cur, 1e-4, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def screen(
    batch: pl.DataFrame,
    reference: pl.DataFrame,
    *,
    label: str | None,
    max_drift: dict[str, float] | None = None,
    keys: Collection[str] = (),
) -> ScreenReport:
    """Run every check; the batch is judged against the reference. ``keys`` (id columns) are not screened."""
    report = ScreenReport()
    batch, reference = batch.drop(keys, strict=False), reference.drop(keys, strict=False)
    numeric = _numeric_columns(reference, batch, label)
    _drift(batch, reference, numeric, report, max_drift or {})
    if numeric:
        ref_x = reference.select(numeric).fill_null(0).to_numpy().astype(np.float64)
        x = batch.select(numeric).fill_null(0).to_numpy().astype(np.float64)
        _outliers(ref_x, x, report)
        if label and label in batch.columns and label in reference.columns:
            _label_flips(ref_x, reference.get_column(label).to_numpy(), x, batch.get_column(label).to_numpy(), report)
            _triggers(batch, reference, numeric, label, report)
        _duplicates(_duplicate_keys(x, batch, _text_columns(batch, label)), report)
    return report


def _text_columns(batch: pl.DataFrame, label: str | None) -> list[str]:
    """String and categorical columns: screened for drift (category frequencies), and they tell duplicates apart.

    Outliers, label flips and triggers read the numeric columns; a text column's values have
    no distance to measure there, so it is left out rather than guessed at.
    """
    return [c for c, t in batch.schema.items() if t in (pl.String, pl.Categorical, pl.Enum) and c != label]


def _duplicate_keys(x: np.ndarray, batch: pl.DataFrame, text: list[str]) -> np.ndarray:
    """The numbers of each row and a code per distinct text value: rows differing only in text are not duplicates.

    Text alone never makes a duplicate (a few categories repeat by nature).
    """
    parts = [x]
    for column in text:
        values = batch.get_column(column).cast(pl.String).fill_null("").to_numpy().astype(str)
        parts.append(np.unique(values, return_inverse=True)[1].reshape(-1, 1).astype(np.float64))
    return np.hstack(parts)


def _drift(
    batch: pl.DataFrame, reference: pl.DataFrame, numeric: list[str], report: ScreenReport, limits: dict[str, float]
) -> None:
    from scipy import stats

    for column in numeric:
        ref = reference.get_column(column).drop_nulls().to_numpy().astype(np.float64)
        cur = batch.get_column(column).drop_nulls().to_numpy().astype(np.float64)
        if len(ref) < 10 or len(cur) < 5:
            continue
        value = psi(ref, cur)
        ks = stats.ks_2samp(ref, cur)
        report.drift[column] = {"psi": round(value, 4), "ks": round(float(ks.statistic), 4), "ks_p": float(ks.pvalue)}
        limit = limits.get(column, PSI_LIMIT)
        if value > limit and ks.pvalue < 1e-3:  # both: PSI alone is noisy on small batches
            report.reasons.append(f"drift: {column} PSI {value:.3f} above {limit:g}")
    for column, dtype in reference.schema.items():
        if dtype not in (pl.String, pl.Categorical) or column not in batch.columns:
            continue
        ref_counts = dict(reference.get_column(column).drop_nulls().cast(pl.String).value_counts().iter_rows())
        cur_counts = dict(batch.get_column(column).drop_nulls().cast(pl.String).value_counts().iter_rows())
        cats = sorted(set(ref_counts) | set(cur_counts))
        total_ref, total_cur = sum(ref_counts.values()), sum(cur_counts.values())
        if not total_ref or not total_cur:
            continue
        expected = np.array([(ref_counts.get(c, 0) + 0.5) / (total_ref + 0.5 * len(cats)) * total_cur for c in cats])
        observed = np.array([cur_counts.get(c, 0) for c in cats], dtype=np.float64)
        chi2 = stats.chisquare(observed, expected * observed.sum() / expected.sum())
        report.drift[column] = {"chi2": round(float(chi2.statistic), 3), "chi2_p": float(chi2.pvalue)}
        if chi2.pvalue < 1e-6:
            report.reasons.append(f"drift: {column} category frequencies changed (chi-square p={chi2.pvalue:.1e})")


def _outliers(ref_x: np.ndarray, x: np.ndarray, report: ScreenReport) -> None:
    from pyod.models.ecod import ECOD

    detector = ECOD()
    detector.fit(ref_x)
    threshold = float(np.quantile(detector.decision_scores_, 0.99))
    scores = detector.decision_function(x)
    flagged = np.flatnonzero(scores > threshold)
    share = len(flagged) / max(len(x), 1)
    report.measured["outlier_share"] = round(share, 4)
    report.measured["outlier_scores"] = scores
    if flagged.size:
        report.flagged["outlier"] = flagged.tolist()
    if share > OUTLIER_SHARE_LIMIT:
        report.reasons.append(f"outliers: {share:.1%} of rows score above the reference's 99th percentile (ECOD)")


def _label_flips(ref_x: np.ndarray, ref_y: np.ndarray, x: np.ndarray, y: np.ndarray, report: ScreenReport) -> None:
    """Two reference judges of each label: the reference neighbourhood (kNN) and a reference model.

    A row is contradicted when the better of the two gives its label at most ``FLIP_AGREEMENT``.
    The reference's own contradicted share (leave-one-out / cross-validated) is the natural rate;
    the batch is quarantined when its count would happen by chance less than 1% of the time.
    """
    from scipy import stats
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(ref_x)
    ref_scaled, scaled = scaler.transform(ref_x), scaler.transform(x)
    classes = np.unique(ref_y)
    knn = KNeighborsClassifier(n_neighbors=min(15, len(ref_y) - 1)).fit(ref_scaled, ref_y)
    model = LogisticRegression(max_iter=2000, C=1.0).fit(ref_scaled, ref_y)
    folds = max(2, min(5, int(np.bincount(np.searchsorted(classes, ref_y)).min())))
    ref_model = cross_val_predict(
        LogisticRegression(max_iter=2000, C=1.0), ref_scaled, ref_y, cv=folds, method="predict_proba"
    )
    neighbours = knn.kneighbors(ref_scaled, n_neighbors=min(16, len(ref_y)), return_distance=False)[:, 1:]
    ref_index = np.searchsorted(classes, ref_y)
    ref_score = np.maximum(
        (ref_y[neighbours] == ref_y[:, None]).mean(axis=1), ref_model[np.arange(len(ref_y)), ref_index]
    )
    natural = max(float((ref_score <= FLIP_DECISIVE).mean()), 0.002)

    known = np.isin(y, classes)
    index = np.where(known, np.searchsorted(classes, np.where(known, y, classes[0])), 0)
    rows = np.arange(len(y))
    agreement = np.maximum(knn.predict_proba(scaled)[rows, index], model.predict_proba(scaled)[rows, index])
    agreement = np.where(known, agreement, 0.0)
    flagged = np.flatnonzero(agreement <= FLIP_AGREEMENT)
    share = len(flagged) / max(len(y), 1)
    decisive = int((agreement <= FLIP_DECISIVE).sum())
    surprise = float(stats.binom.sf(decisive - 1, len(y), natural)) if decisive else 1.0
    report.measured["label_flip_share"] = round(share, 4)
    report.measured["label_flip_natural_share"] = round(natural, 4)
    report.measured["label_agreement"] = agreement
    if flagged.size:
        report.flagged["label_flip"] = flagged.tolist()
    if surprise < FLIP_SURPRISE:
        report.reasons.append(
            f"label flips: {share:.1%} of rows carry a label the reference contradicts "
            f"(the reference itself: {natural:.1%}; p={surprise:.1e})"
        )


def _triggers(
    batch: pl.DataFrame, reference: pl.DataFrame, numeric: list[str], label: str, report: ScreenReport
) -> None:
    labels = batch.get_column(label).to_numpy()
    minimum = max(TRIGGER_MIN_ROWS, int(0.005 * batch.height))
    found: list[int] = []
    for column in numeric:
        ref_col = reference.get_column(column).drop_nulls()
        lo, hi = ref_col.min(), ref_col.max()
        ref_values = set(ref_col.unique().to_list()) if ref_col.n_unique() <= 50 else None
        values = batch.get_column(column).to_numpy()
        uniq, counts = np.unique(values[~np.isnan(values.astype(np.float64))], return_counts=True)
        for value, count in zip(uniq, counts, strict=True):
            if count < minimum:
                continue
            novel = (ref_values is not None and value not in ref_values) or value < lo or value > hi
            if not novel:
                continue
            rows = np.flatnonzero(values == value)
            top = np.unique(labels[rows], return_counts=True)[1].max() / len(rows)
            if top >= TRIGGER_PURITY:
                found.extend(rows.tolist())
                report.reasons.append(
                    f"backdoor trigger: {column} = {value:g} in {len(rows)} rows, never seen in the reference, "
                    f"{top:.0%} of them labelled alike"
                )
    if found:
        report.flagged["trigger"] = sorted(set(found))


def _duplicates(x: np.ndarray, report: ScreenReport) -> None:
    rounded = np.round(x, 3)
    _, first = np.unique(rounded, axis=0, return_index=True)
    keep = np.zeros(len(x), dtype=bool)
    keep[first] = True
    flagged = np.flatnonzero(~keep)
    share = len(flagged) / max(len(x), 1)
    report.measured["duplicate_share"] = round(share, 4)
    if flagged.size:
        report.flagged["duplicate"] = flagged.tolist()
    if share > DUPLICATE_SHARE_LIMIT:
        report.reasons.append(f"duplicate flood: {share:.1%} of rows repeat other rows (exactly or to 3 decimals)")
