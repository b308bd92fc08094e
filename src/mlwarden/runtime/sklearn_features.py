"""What a fitted scikit-learn estimator says about its input columns: names, and which take text or categories.

The names come from ``feature_names_in_`` (else ``x0``, ``x1``, ...). A column that reaches a
``OneHotEncoder`` or ``OrdinalEncoder`` first — directly, through a ``ColumnTransformer``, or
after a ``SimpleImputer`` in a nested pipeline — takes the encoder's categories: text categories
make a ``categorical`` feature, numeric ones a number with its allowed values. Unknown categories
are refused unless the encoder handles them (``handle_unknown="ignore"`` and the like). Every
other column is a number.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from mlwarden.errors import InvalidInput
from mlwarden.runtime.signature import Feature, InputSignature

Encoded = tuple[int, Any, int, bool]
"""(input column, encoder, the column's position among the encoder's categories, missing values imputed)."""


def estimator_signature(estimator: Any) -> InputSignature:
    """The signature of a fitted estimator: a ``frame`` of named columns when any column takes text."""
    count = getattr(estimator, "n_features_in_", None)
    if not isinstance(count, int) or count < 1:
        raise InvalidInput("the estimator does not say how many features it takes (n_features_in_)")
    given = getattr(estimator, "feature_names_in_", None)
    names = [str(n) for n in given] if given is not None else [f"x{i}" for i in range(count)]
    if len(names) != count:
        raise InvalidInput(f"the estimator names {len(names)} features but takes {count}")
    features = [Feature(n, "float64") for n in names]
    for index, encoder, position, imputed in _encoded_columns(estimator, names):
        features[index] = _encoded_feature(features[index].name, encoder, position, imputed)
    layout = "frame" if any(f.is_text for f in features) else "tensor"
    return InputSignature(tuple(features), layout, "X", "float64")


def _steps(estimator: Any) -> list[Any]:
    """An estimator's steps in order (itself when it is not a pipeline), skipping pass-throughs."""
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, Pipeline):
        return [s for _, s in estimator.steps if s is not None and s != "passthrough"]
    return [estimator]


def _encoder(transformer: Any) -> tuple[Any, bool] | None:
    """The encoder a column reaches first (after imputers only), and whether an imputer came before it."""
    from sklearn.impute import SimpleImputer

    imputed = False
    for step in _steps(transformer):
        if isinstance(getattr(step, "categories_", None), list):
            return step, imputed
        if not isinstance(step, SimpleImputer):
            return None
        imputed = True
    return None


def _encoded_columns(estimator: Any, names: list[str]) -> Iterator[Encoded]:
    from sklearn.compose import ColumnTransformer

    steps = _steps(estimator)
    first = steps[0] if steps else None
    if isinstance(first, ColumnTransformer):
        for name, transformer, columns in first.transformers_:
            found = _encoder(transformer) if not isinstance(transformer, str) else None
            if found is None:
                continue
            indices = _input_indices(first, name, columns, names)
            for position, index in enumerate(indices):
                yield index, found[0], position, found[1]
        return
    found = _encoder(estimator)
    if found is not None:
        for index in range(len(names)):
            yield index, found[0], index, found[1]


def _input_indices(transformer: Any, name: str, columns: Any, names: list[str]) -> list[int]:
    """The input columns one part of a fitted ``ColumnTransformer`` reads, as indices."""
    resolved = getattr(transformer, "_transformer_to_input_indices", {}).get(name)
    if resolved is not None:
        return [int(i) for i in resolved]
    selected = [columns] if isinstance(columns, str | int) else list(columns)
    try:
        return [names.index(c) if isinstance(c, str) else int(c) for c in selected]
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"cannot tell which columns {name!r} of the ColumnTransformer reads") from exc


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _encoded_feature(name: str, encoder: Any, position: int, imputed: bool) -> Feature:
    categories = np.asarray(encoder.categories_[position])
    unknown = "error" if getattr(encoder, "handle_unknown", "ignore") == "error" else "ignore"
    values = categories.tolist()
    missing = imputed or any(_missing(v) for v in values)
    known = [v for v in values if not _missing(v)]
    if all(isinstance(v, str) for v in known):
        return Feature(name, "categorical", allowed=tuple(known), unknown=unknown, allow_nan=missing)
    if categories.dtype.kind not in "iuf" or any(isinstance(v, bool) for v in known):
        return Feature(name, "float64", allow_nan=missing)
    dtype = "int64" if categories.dtype.kind in "iu" else "float64"
    allowed = tuple(known) if unknown == "error" else None
    return Feature(name, dtype, allowed=allowed, allow_nan=missing)
