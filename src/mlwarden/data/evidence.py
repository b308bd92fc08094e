"""The evidence behind a quarantine, per reason: what a reviewer needs to see before releasing a batch.

* label flips: each flagged row's label next to the majority label of its reference neighbourhood
  (the 15 nearest reference rows, standardised features) and how many neighbours share its label;
* backdoor triggers: the trigger column and value, the rows carrying it, their label share, and
  the range the reference holds for that column;
* duplicate floods: how many rows repeat others, and the most repeated rows with their copy counts.

Everything here is plain JSON (it is printed with the outcome and rendered in the HTML report).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
import polars as pl

from mlwarden.data.screen import ScreenReport

MAX_ROWS = 50
NEIGHBOURS = 15


def _numeric(reference: pl.DataFrame, batch: pl.DataFrame, label: str | None) -> list[str]:
    return [
        c
        for c, t in reference.schema.items()
        if t.is_numeric() and c != label and c in batch.columns and batch.schema[c].is_numeric()
    ]


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _flips(rows: list[int], batch: pl.DataFrame, reference: pl.DataFrame, label: str) -> list[dict[str, Any]]:
    from sklearn.neighbors import NearestNeighbors
    from sklearn.preprocessing import StandardScaler

    numeric = _numeric(reference, batch, label)
    if not numeric or not rows:
        return []
    ref_x = reference.select(numeric).fill_null(0).to_numpy().astype(np.float64)
    ref_y = reference.get_column(label).to_numpy()
    scaler = StandardScaler().fit(ref_x)
    shown = rows[:MAX_ROWS]
    x = scaler.transform(batch[shown].select(numeric).fill_null(0).to_numpy().astype(np.float64))
    near = NearestNeighbors(n_neighbors=min(NEIGHBOURS, len(ref_y))).fit(scaler.transform(ref_x))
    neighbours = near.kneighbors(x, return_distance=False)
    labels = batch.get_column(label).to_numpy()
    out = []
    for row, around in zip(shown, neighbours, strict=True):
        values, counts = np.unique(ref_y[around], return_counts=True)
        out.append(
            {
                "row": row,
                "label": _plain(labels[row]),
                "neighbourhood_majority": _plain(values[counts.argmax()]),
                "neighbours_agreeing": int((ref_y[around] == labels[row]).sum()),
                "neighbours": len(around),
            }
        )
    return out


def _triggers(rows: list[int], batch: pl.DataFrame, reference: pl.DataFrame, label: str) -> list[dict[str, Any]]:
    flagged = batch[rows]
    labels = batch.get_column(label)
    out = []
    for column in _numeric(reference, batch, label):
        for value, count in flagged.get_column(column).rename("value").value_counts(name="n").iter_rows():
            if value is None or count < 2:
                continue
            carrying = batch.with_row_index("__row").filter(pl.col(column) == value).get_column("__row").to_list()
            ref_col = reference.get_column(column).drop_nulls()
            if not carrying or (ref_col == value).any():
                continue
            tops = labels[carrying].rename("value").value_counts(sort=True, name="n").row(0)
            out.append(
                {
                    "column": column, "value": _plain(value), "rows": len(carrying), "label": _plain(tops[0]),
                    "label_share": round(tops[1] / len(carrying), 4), "reference_min": _plain(ref_col.min()),
                    "reference_max": _plain(ref_col.max()), "example_rows": carrying[:10],
                }
            )  # fmt: skip
    return out


def _duplicates(rows: list[int], batch: pl.DataFrame, numeric: list[str]) -> dict[str, Any]:
    rounded = np.round(batch.select(numeric).fill_null(0).to_numpy().astype(np.float64), 3)
    _, first, inverse, counts = np.unique(rounded, axis=0, return_index=True, return_inverse=True, return_counts=True)
    inverse = np.asarray(inverse).reshape(-1)
    order = np.argsort(-counts, kind="stable")
    groups = [
        {"row": int(first[g]), "copies": int(counts[g] - 1), "rows": np.flatnonzero(inverse == g)[:10].tolist()}
        for g in order[:10]
        if counts[g] > 1
    ]
    return {
        "repeated_rows": len(rows),
        "share": round(len(rows) / max(batch.height, 1), 4),
        "distinct_rows": len(first),
        "most_repeated": groups,
    }


def quarantine_evidence(
    batch: pl.DataFrame, reference: pl.DataFrame, report: ScreenReport, *, label: str | None, keys: Collection[str] = ()
) -> dict[str, Any]:
    """Evidence for each reason in ``report`` that has any (label flips, triggers, duplicate floods)."""
    batch, reference = batch.drop(keys, strict=False), reference.drop(keys, strict=False)
    evidence: dict[str, Any] = {}
    has_label = label is not None and label in batch.columns and label in reference.columns
    for reason in report.reasons:
        if reason.startswith("label flips") and has_label and "label_flip" not in evidence:
            evidence["label_flip"] = _flips(report.flagged.get("label_flip", []), batch, reference, str(label))
        elif reason.startswith("backdoor trigger") and has_label and "trigger" not in evidence:
            evidence["trigger"] = _triggers(report.flagged.get("trigger", []), batch, reference, str(label))
        elif reason.startswith("duplicate flood") and "duplicate" not in evidence:
            numeric = _numeric(reference, batch, label)
            evidence["duplicate"] = _duplicates(report.flagged.get("duplicate", []), batch, numeric)
    return evidence
