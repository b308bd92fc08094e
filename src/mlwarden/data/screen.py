"""Screening a batch against the reference data: drift, outliers, label flips, backdoor triggers, duplicate floods.

Each check returns the rows it flags and, when the batch as a whole looks wrong, a reason.
A batch with any reason is quarantined. The reference enters as a :class:`FittedReference`
(fitted once per dataset version and kept, see ``detector_cache``); the row-wise detectors
(outliers, label flips) score the batch in chunks of ``chunk_rows``, so their working memory
is bounded whatever the batch's size, and a row's scores never depend on its chunk.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from mlwarden.data.fitted_reference import TEXT_TYPES, FittedReference, fit_reference, numeric_columns
from mlwarden.data.label_judges import FLIP_AGREEMENT, FLIP_DECISIVE
from mlwarden.errors import InvalidInput

__all__ = ["FLIP_AGREEMENT", "FLIP_DECISIVE", "ScreenReport", "ks_sorted", "psi", "screen", "screen_against"]

PSI_LIMIT = 0.25
OUTLIER_SHARE_LIMIT = 0.03
FLIP_SURPRISE = 0.01
"""Quarantine when this many contradicted labels would happen by chance less than 1% of the time."""
DUPLICATE_SHARE_LIMIT = 0.05
TRIGGER_PURITY = 0.95
TRIGGER_MIN_ROWS = 5
CHUNK_ROWS = 16_384
"""Rows scored at a time by the row-wise detectors."""


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


def psi(reference: np.ndarray, batch: np.ndarray, bins: int = 10) -> float:
    """Population stability index over the reference's quantile bins."""
    return _psi_sorted(np.sort(reference), np.sort(batch), bins)


def _psi_sorted(reference: np.ndarray, batch: np.ndarray, bins: int = 10) -> float:
    """:func:`psi` of two sorted samples (bin counts by binary search instead of a histogram's sort)."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if len(edges) < 3:
        edges = np.unique(np.concatenate([edges, [edges[0] - 1, edges[-1] + 1]]))
    edges[0], edges[-1] = -np.inf, np.inf
    ref = np.diff(np.searchsorted(reference, edges, side="left")) / max(len(reference), 1)
    cur = np.diff(np.searchsorted(batch, edges, side="left")) / max(len(batch), 1)
    ref, cur = np.clip(ref, 1e-4, None), np.clip(cur, 1e-4, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def screen(
    batch: pl.DataFrame,
    reference: pl.DataFrame,
    *,
    label: str | None,
    max_drift: dict[str, float] | None = None,
    keys: Collection[str] = (),
    chunk_rows: int = CHUNK_ROWS,
) -> ScreenReport:
    """Fit the reference, then :func:`screen_against` it; reference number columns the batch lacks are left out."""
    batch = batch.drop(keys, strict=False)
    lacking = [
        c for c in numeric_columns(reference, label) if c not in batch.columns or not batch.schema[c].is_numeric()
    ]
    fitted = fit_reference(reference.drop(lacking), label=label, keys=keys)
    if fitted.label is not None and fitted.label not in batch.columns:
        fitted = fit_reference(reference.drop(lacking), label=None, keys=keys)
    return screen_against(batch, fitted, max_drift=max_drift, keys=keys, chunk_rows=chunk_rows)


def screen_against(
    batch: pl.DataFrame,
    reference: FittedReference,
    *,
    max_drift: dict[str, float] | None = None,
    keys: Collection[str] = (),
    chunk_rows: int = CHUNK_ROWS,
) -> ScreenReport:
    """Run every check, judging the batch against the fitted reference. ``keys`` (id columns) are not screened."""
    if chunk_rows < 1:
        raise InvalidInput(f"chunk_rows must be at least 1, got {chunk_rows}")
    report = ScreenReport()
    batch = batch.drop(keys, strict=False)
    numeric = list(reference.numeric)
    lacking = [c for c in numeric if c not in batch.columns or not batch.schema[c].is_numeric()]
    if lacking:
        raise InvalidInput(f"batch lacks the number column(s) {', '.join(lacking[:10])} of its reference")
    label = reference.label if reference.label in batch.columns else None
    _drift(batch, reference, report, max_drift or {})
    if numeric:
        x = batch.select(numeric).fill_null(0).to_numpy().astype(np.float64)
        _outliers(reference, x, report)
        if label is not None and reference.judges is not None:
            _label_flips(reference, x, batch.get_column(label).to_numpy(), report, chunk_rows)
            _triggers(batch, reference, label, report)
        _duplicates(_duplicate_keys(x, batch, _text_columns(batch, label)), report)
    return report


def _chunks(rows: int, size: int) -> Iterator[slice]:
    for start in range(0, rows, size):
        yield slice(start, min(start + size, rows))


def _text_columns(batch: pl.DataFrame, label: str | None) -> list[str]:
    """String and categorical columns: screened for drift (category frequencies), and they tell duplicates apart.

    Outliers, label flips and triggers read the numeric columns; a text column's values have
    no distance to measure there, so it is left out rather than guessed at.
    """
    return [c for c, t in batch.schema.items() if t in (*TEXT_TYPES, pl.Enum) and c != label]


def _duplicate_keys(x: np.ndarray, batch: pl.DataFrame, text: list[str]) -> np.ndarray:
    """The numbers of each row and a code per distinct text value: rows differing only in text are not duplicates.

    Text alone never makes a duplicate (a few categories repeat by nature).
    """
    parts = [x]
    for column in text:
        values = batch.get_column(column).cast(pl.String).fill_null("").to_numpy().astype(str)
        parts.append(np.unique(values, return_inverse=True)[1].reshape(-1, 1).astype(np.float64))
    return np.hstack(parts)


KS_EXACT_MAX_ROWS = 10_000
"""``scipy.stats.ks_2samp`` computes the exact p-value up to this sample size, the asymptotic one above."""


def ks_sorted(reference: np.ndarray, batch: np.ndarray) -> tuple[float, float]:
    """Two-sided two-sample Kolmogorov-Smirnov statistic and p-value of two sorted samples, as ``ks_2samp``.

    Large samples take scipy's asymptotic path, computed here over the merged samples (their
    empirical CDFs by binary search with sorted keys) instead of re-sorting both; small ones
    (exact p-value) go to scipy.
    """
    from scipy import stats

    n1, n2 = len(reference), len(batch)
    if max(n1, n2) <= KS_EXACT_MAX_ROWS:
        result = stats.ks_2samp(reference, batch)
        return float(result.statistic), float(result.pvalue)
    merged = np.sort(np.concatenate([reference, batch]), kind="stable")  # two sorted runs: one merge
    diffs = np.searchsorted(reference, merged, side="right") / n1 - np.searchsorted(batch, merged, side="right") / n2
    d = float(max(np.clip(-diffs.min(), 0, 1), diffs.max()))
    m, n = max(n1, n2), min(n1, n2)
    p = float(np.clip(stats.kstwo.sf(d, np.round(m * n / (m + n))), 0, 1))
    return d, p


def _drift(batch: pl.DataFrame, reference: FittedReference, report: ScreenReport, limits: dict[str, float]) -> None:
    from scipy import stats

    for column, ref in zip(reference.numeric, reference.values, strict=True):
        cur = np.sort(batch.get_column(column).drop_nulls().to_numpy().astype(np.float64))
        if len(ref) < 10 or len(cur) < 5:
            continue
        value = _psi_sorted(ref, cur)
        ks_d, ks_p = ks_sorted(ref, cur)
        report.drift[column] = {"psi": round(value, 4), "ks": round(ks_d, 4), "ks_p": ks_p}
        limit = limits.get(column, PSI_LIMIT)
        if value > limit and ks_p < 1e-3:  # both: PSI alone is noisy on small batches
            report.reasons.append(f"drift: {column} PSI {value:.3f} above {limit:g}")
    for column, ref_counts in reference.categories.items():
        if column not in batch.columns:
            continue
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


def _outliers(reference: FittedReference, x: np.ndarray, report: ScreenReport) -> None:
    detector = reference.outliers
    if detector is None:
        return
    scores = detector.scores(x)
    flagged = np.flatnonzero(scores > detector.threshold)
    share = len(flagged) / max(len(x), 1)
    report.measured["outlier_share"] = round(share, 4)
    report.measured["outlier_scores"] = scores
    if flagged.size:
        report.flagged["outlier"] = flagged.tolist()
    if share > OUTLIER_SHARE_LIMIT:
        report.reasons.append(f"outliers: {share:.1%} of rows score above the reference's 99th percentile (ECOD)")


def _label_flips(
    reference: FittedReference, x: np.ndarray, y: np.ndarray, report: ScreenReport, chunk_rows: int
) -> None:
    """A row is contradicted when the better of the two reference judges gives its label at most ``FLIP_AGREEMENT``.

    The reference's own contradicted share (leave-one-out / cross-validated) is the natural rate;
    the batch is quarantined when its count would happen by chance less than 1% of the time.
    """
    from scipy import stats

    judges = reference.judges
    if judges is None:
        return
    agreement, index = np.empty(len(y), dtype=np.float64), np.empty(len(y), dtype=np.int64)
    for part in _chunks(len(y), chunk_rows):
        agreement[part], index[part] = judges.model_agreement(x[part], y[part])
    # The neighbourhood is asked only where the model doubts the label (elsewhere no verdict can change),
    # in chunks of doubtful rows: few large queries are much faster than many small ones.
    doubtful = np.flatnonzero((index >= 0) & (agreement <= FLIP_AGREEMENT))
    neighbourhood = judges.neighbourhood() if doubtful.size else None
    for part in _chunks(len(doubtful), chunk_rows):
        rows = doubtful[part]
        near = judges.neighbour_agreement(x[rows], index[rows], neighbourhood)
        agreement[rows] = np.maximum(agreement[rows], near)
    natural = judges.natural
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


def _triggers(batch: pl.DataFrame, reference: FittedReference, label: str, report: ScreenReport) -> None:
    labels = batch.get_column(label).to_numpy()
    minimum = max(TRIGGER_MIN_ROWS, int(0.005 * batch.height))
    found: list[int] = []
    for column, ref in zip(reference.numeric, reference.values, strict=True):
        if not len(ref):
            continue
        lo, hi = ref[0], ref[-1]
        distinct = np.unique(ref)
        values = batch.get_column(column).to_numpy().astype(np.float64)
        novel = (values < lo) | (values > hi)  # NaN (a null) is never novel
        if len(distinct) <= 50:  # a discrete column: any value it never holds is novel
            novel |= ~np.isin(values, distinct) & ~np.isnan(values)
        uniq, counts = np.unique(values[novel], return_counts=True)
        for value, count in zip(uniq, counts, strict=True):
            if count < minimum:
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
    """Rows equal, once rounded to 3 decimals, to an earlier row (their bits hashed, not sorted)."""
    bits = np.ascontiguousarray(np.round(x, 3) + 0.0).view(np.int64)  # + 0.0: -0.0 becomes 0.0, as np.unique has it
    frame = pl.DataFrame(bits, schema=[f"c{i}" for i in range(bits.shape[1])], orient="row")
    first = frame.select(pl.struct(pl.all()).is_first_distinct()).to_series().to_numpy()
    flagged = np.flatnonzero(~first)
    share = len(flagged) / max(len(x), 1)
    report.measured["duplicate_share"] = round(share, 4)
    if flagged.size:
        report.flagged["duplicate"] = flagged.tolist()
    if share > DUPLICATE_SHARE_LIMIT:
        report.reasons.append(f"duplicate flood: {share:.1%} of rows repeat other rows (exactly or to 3 decimals)")
