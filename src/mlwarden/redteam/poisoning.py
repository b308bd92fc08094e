"""Suite ``poisoning``: poisoned training batches through ``POST /v1/datasets/{name}/batches``.

Built from the training rows (label flips, a backdoor trigger, a duplicate flood, out-of-range
rows), each batch must come back quarantined (202), never accepted into a new dataset version.
Needs a ``data:write`` token, the dataset's name and its rows with labels; without them the suite
reports "not checked".
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from mlwarden.redteam.findings import FindingSeverity, SuiteResult
from mlwarden.redteam.suites import LabelledRows, SuiteOptions, register
from mlwarden.redteam.target import Target
from mlwarden.redteam.verdicts import Tally

SUITE = "poisoning"
BATCH_ROWS = 200
_REMEDY = "screen every batch against the training profile (contract, outliers, label judges, triggers, duplicates)"

Attack = Callable[[pl.DataFrame, str, np.random.Generator], pl.DataFrame]


def _numeric(frame: pl.DataFrame, label: str) -> list[str]:
    return [c for c, t in frame.schema.items() if c != label and t.is_numeric()]


def _label_flips(frame: pl.DataFrame, label: str, rng: np.random.Generator) -> pl.DataFrame:
    """A fifth of the rows relabelled with another class."""
    labels = frame[label].to_list()
    classes = sorted(set(labels), key=str)
    rows = rng.choice(len(labels), max(1, len(labels) // 5), replace=False)
    for i in rows:
        others = [c for c in classes if c != labels[i]]
        labels[i] = others[int(rng.integers(len(others)))] if others else labels[i]
    return frame.with_columns(pl.Series(label, labels, dtype=frame[label].dtype))


def _backdoor(frame: pl.DataFrame, label: str, rng: np.random.Generator) -> pl.DataFrame:
    """One feature set to a value never seen (far above its range) in 5% of rows, all with one label."""
    column = _numeric(frame, label)[0]
    values = frame[column].cast(pl.Float64).to_numpy().copy()
    trigger = float(np.nanmax(np.abs(values))) * 3 + 7
    rows = rng.choice(len(values), max(10, len(values) // 20), replace=False)
    values[rows] = trigger
    labels = frame[label].to_list()
    target_class = labels[0]
    for i in rows:
        labels[i] = target_class
    return frame.with_columns(pl.Series(column, values), pl.Series(label, labels, dtype=frame[label].dtype))


def _duplicates(frame: pl.DataFrame, label: str, rng: np.random.Generator) -> pl.DataFrame:
    """A third of the batch made of copies of five rows."""
    sources = rng.choice(frame.height, 5, replace=False)
    copies = rng.choice(sources, frame.height // 3)
    flooded: pl.DataFrame = pl.concat([frame, frame[copies.tolist()]])
    return flooded


def _out_of_range(frame: pl.DataFrame, label: str, rng: np.random.Generator) -> pl.DataFrame:
    """A tenth of the rows pushed six standard deviations out on every numeric feature."""
    columns = _numeric(frame, label)
    rows = rng.choice(frame.height, max(5, frame.height // 10), replace=False)
    changed = []
    for column in columns:
        values = frame[column].cast(pl.Float64).to_numpy().copy()
        spread = float(np.nanstd(values)) or 1.0
        values[rows] = float(np.nanmean(values)) + 6 * spread * rng.choice([-1.0, 1.0], len(rows))
        changed.append(pl.Series(column, values))
    return frame.with_columns(changed)


ATTACKS: dict[str, tuple[str, Attack]] = {
    "label-flips": ("a batch with 20% of its labels flipped", _label_flips),
    "backdoor-trigger": ("a batch carrying a backdoor trigger", _backdoor),
    "duplicate-flood": ("a batch flooded with duplicates", _duplicates),
    "out-of-range": ("a batch with 10% of rows far out of range", _out_of_range),
}


def _base(training: LabelledRows, label: str, rng: np.random.Generator) -> pl.DataFrame:
    frame = pl.DataFrame(training.rows)
    if label not in frame.columns and training.labels is not None:
        frame = frame.with_columns(pl.Series(label, training.labels))
    rows = rng.choice(frame.height, min(BATCH_ROWS, frame.height), replace=False)
    return frame[sorted(rows.tolist())]


def _csv(frame: pl.DataFrame) -> bytes:
    out = io.BytesIO()
    frame.write_csv(out)
    return out.getvalue()


def _missing(target: Target, options: SuiteOptions) -> str | None:
    if not target.tokens.data:
        return "no data:write token given (--data-token)"
    if not options.dataset:
        return "no dataset named (--dataset)"
    if options.training is None or not options.training.rows or not options.label:
        return "no training rows with their label column (--reference FILE --label COLUMN)"
    return None


def _evidence(reply_doc: Any, status: int) -> dict[str, Any]:
    doc = reply_doc if isinstance(reply_doc, dict) else {}
    reasons = [str(r)[:200] for r in doc.get("reasons", [])][:5] if isinstance(doc.get("reasons"), list) else []
    return {"http_status": status, "status": doc.get("status"), "reasons": reasons, "batch": doc.get("batch")}


@register(SUITE)
def run_poisoning(target: Target, options: SuiteOptions) -> SuiteResult:
    """Submit each poisoned batch once; each must be quarantined."""
    started = time.monotonic()
    tally = Tally(SUITE)
    why = _missing(target, options)
    if why is not None:
        for probe, (title, _) in ATTACKS.items():
            tally.not_checked(probe, title, why)
        return SuiteResult(SUITE, [], {}, seconds=time.monotonic() - started, checks=tally.checks)
    assert_label = str(options.label)
    rng = np.random.default_rng(options.seed)
    training = options.training
    quarantined = 0
    for probe, (title, attack) in ATTACKS.items():
        if time.monotonic() - started > options.seconds:
            tally.not_checked(probe, title, f"the suite's {options.seconds:g} s were spent")
            continue
        base = _base(training, assert_label, rng) if training is not None else pl.DataFrame()
        batch = attack(base, assert_label, rng)
        path = f"/v1/datasets/{options.dataset}/batches?filename=redteam-{probe}.csv"
        reply = target.request("POST", path, patient=True,
                               token=target.tokens.data, content=_csv(batch),
                               headers={"Content-Type": "text/csv"})  # fmt: skip
        evidence = _evidence(reply.json(), reply.status)
        if reply.status == 202 and evidence["status"] == "quarantined":
            quarantined += 1
            tally.passed(probe, title, "quarantined: " + "; ".join(evidence["reasons"]))
        elif reply.status in (200, 201) or evidence["status"] == "accepted":
            tally.failed(probe, title, FindingSeverity.HIGH, {**evidence, "rows": batch.height}, _REMEDY)
        else:
            tally.refused(probe, title, reply, remedy=_REMEDY)
    share = quarantined / len(ATTACKS)
    return SuiteResult(SUITE, tally.findings, {"batches": len(ATTACKS), "quarantined_share": round(share, 3)},
                       queries=0, seconds=time.monotonic() - started, checks=tally.checks)  # fmt: skip


__all__ = ["ATTACKS", "run_poisoning"]
