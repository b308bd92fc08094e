"""Run a candidate on evaluation data and compute metrics ourselves (never self-reported numbers)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from mlwarden.errors import InvalidInput
from mlwarden.gates.figures import finite
from mlwarden.gates.interface import Candidate, GateContext
from mlwarden.registry.models import instantiate
from mlwarden.registry.sniff import detect_format
from mlwarden.runtime.interface import LoadedModel
from mlwarden.runtime.signature import InputSignature


@dataclass(frozen=True, slots=True)
class Scored:
    """Truth, predicted labels, and positive-class scores (when the model gives probabilities)."""

    y_true: np.ndarray
    y_pred: np.ndarray
    y_score: np.ndarray | None


def features_and_label(
    frame: pl.DataFrame, config: dict[str, Any], signature: InputSignature
) -> tuple[np.ndarray | dict[str, np.ndarray], np.ndarray]:
    """The model's validated input and the truth, with evaluation columns read by feature name.

    Extra columns and any column order are fine. Text features take their column as strings
    (a CSV has no types); numeric features need numeric columns (strings are never read as
    numbers). Only an unnamed model (``x0``, ``x1``, ...) reads columns by position: the
    policy's ``features``, else every column but the label and ``drop``.
    """
    label = str(config.get("label", "target"))
    if label not in frame.columns:
        raise InvalidInput(f"evaluation data has no label column {label!r}")
    columns = _feature_columns(frame, config, signature, label)
    selected = frame.select(columns)
    text = [c for c, f in zip(columns, signature.features, strict=True) if f.is_text]
    numeric = [c for c, f in zip(columns, signature.features, strict=True) if not f.is_text]
    wrong = [c for c in numeric if not (selected.schema[c].is_numeric() or selected.schema[c] == pl.Null)]
    if wrong:
        raise InvalidInput(f"evaluation columns {', '.join(wrong)} hold text, but the model takes numbers there")
    y = frame.get_column(label).to_numpy()
    if text:
        rows = [list(r) for r in selected.with_columns(pl.col(text).cast(pl.String)).iter_rows()]
        return signature.validate(rows), y
    return signature.validate(selected.to_numpy().astype(np.float32)), y


def _feature_columns(frame: pl.DataFrame, config: dict[str, Any], signature: InputSignature, label: str) -> list[str]:
    names = signature.names
    explicit = [str(c) for c in config.get("features") or []]
    if all(n in frame.columns for n in names) and (not explicit or set(names) <= set(explicit)):
        return names
    unnamed = names == [f"x{i}" for i in range(len(names))]
    if not explicit and not unnamed:
        missing = [n for n in names if n not in frame.columns]
        raise InvalidInput(f"evaluation data lacks feature columns: {', '.join(missing)}")
    drop = set(config.get("drop") or [])
    columns = explicit or [c for c in frame.columns if c != label and c not in drop]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidInput(f"evaluation data lacks feature columns: {', '.join(missing)}")
    if len(columns) != len(names):
        raise InvalidInput(f"evaluation data has {len(columns)} feature columns, the model takes {len(names)}")
    return columns


def score(candidate: Candidate, ctx: GateContext, config: dict[str, Any]) -> Scored:
    """Predictions of ``candidate`` on the evaluation data (cached per artifact hash and signature)."""
    if ctx.evaluation is None:
        raise InvalidInput("no evaluation dataset: set the gate's `dataset` in the policy or pass --eval")
    model_key = f"model:{candidate.sha256}"
    model: LoadedModel | None = ctx.cache.get(model_key)
    if model is None:
        fmt = detect_format(candidate.artifact, candidate.filename)
        model = ctx.cache[model_key] = instantiate(fmt.name, candidate.artifact, runtime=ctx.runtime)
    signature = candidate.signature or model.signature
    key = f"scored:{candidate.sha256}:{config.get('label')}:{config.get('features')}:{signature.names}"
    if key in ctx.cache:
        cached: Scored = ctx.cache[key]
        return cached
    x, y = features_and_label(ctx.evaluation.frame, config, signature)
    outputs = model.predict(x)
    names = outputs.names
    values = dict(zip(names, outputs.values, strict=True))
    label_key = next((n for n in names if "label" in n.lower()), names[0])
    y_pred = np.asarray(values[label_key]).reshape(len(y), -1)[:, 0]
    prob_key = next((n for n in names if "prob" in n.lower()), None)
    y_score = None
    if prob_key is not None:
        probs = np.asarray(values[prob_key], dtype=np.float64).reshape(len(y), -1)
        y_score = probs[:, -1] if probs.shape[1] >= 2 else probs[:, 0]
    scored = Scored(np.asarray(y), y_pred, y_score)
    ctx.cache[key] = scored
    return scored


def metric(name: str, s: Scored) -> float:
    """accuracy, roc_auc, f1, precision, recall, rmse, mae: a finite number, else :class:`InvalidInput`.

    A metric that is undefined on the evaluation data (ROC AUC with one class present, say)
    is an error naming the metric, never a number a bound could wave through.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = _compute(name, s)
        except ValueError as exc:
            raise InvalidInput(f"metric {name} cannot be computed on the evaluation data: {exc}") from exc
    try:
        return finite(f"metric {name}", value)
    except InvalidInput as exc:
        why = f": {caught[0].message}" if caught else ""
        raise InvalidInput(f"{exc.message} on the evaluation data{why}") from exc


def _compute(name: str, s: Scored) -> float:
    from sklearn import metrics as m

    if name == "accuracy":
        return float(m.accuracy_score(s.y_true, s.y_pred))
    if name == "roc_auc":
        if s.y_score is None:
            raise InvalidInput("roc_auc needs a model that outputs probabilities")
        return float(m.roc_auc_score(s.y_true, s.y_score))
    if name in ("f1", "precision", "recall"):
        fn = {"f1": m.f1_score, "precision": m.precision_score, "recall": m.recall_score}[name]
        return float(fn(s.y_true, s.y_pred, zero_division=0))
    if name == "rmse":
        return float(np.sqrt(m.mean_squared_error(s.y_true, s.y_pred)))
    if name == "mae":
        return float(m.mean_absolute_error(s.y_true, s.y_pred))
    raise InvalidInput(f"unknown metric {name!r}: use accuracy, roc_auc, f1, precision, recall, rmse or mae")


LOWER_IS_BETTER = frozenset({"rmse", "mae"})
