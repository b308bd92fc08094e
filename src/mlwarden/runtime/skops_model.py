"""scikit-learn estimators saved with skops, loaded only if every type is trusted (see ``skops_trust``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlwarden.errors import InvalidInput, ValidationError
from mlwarden.runtime.interface import Outputs
from mlwarden.runtime.sklearn_features import estimator_signature
from mlwarden.runtime.skops_checks import check_estimator
from mlwarden.runtime.skops_trust import ALLOWED_TYPES, SkopsTrust, TrustedTypes, check_types, types_in

__all__ = ["ALLOWED_TYPES", "SkopsModel", "check_types", "types_in"]


class SkopsModel:
    """A scikit-learn estimator; its signature comes from the fitted estimator (see ``sklearn_features``)."""

    def __init__(self, data: bytes, *, trust: SkopsTrust | None = None) -> None:
        import skops.io as sio

        self.trusted: TrustedTypes = check_types(data, trust)
        try:
            self.estimator = sio.loads(data, trusted=self.trusted.names)
        except Exception as exc:  # skops raises many types for damaged files
            raise InvalidInput(f"skops cannot load this model: {str(exc).splitlines()[0][:200]}") from exc
        check_estimator(self.estimator)  # raw indices (tree nodes) checked before anything runs on them
        self.signature = estimator_signature(self.estimator)
        names = getattr(self.estimator, "feature_names_in_", None)
        self.columns: list[str] | None = [str(n) for n in names] if names is not None else None

    def model_input(self, inputs: np.ndarray | dict[str, np.ndarray]) -> Any:
        """What the estimator was fitted on: a DataFrame with its column names, else a matrix.

        Validated columns arrive in signature order; the estimator's own names are used (a
        signature file may have renamed them), so position is the contract.
        """
        if self.columns is not None:
            import pandas as pd

            if isinstance(inputs, np.ndarray):
                return pd.DataFrame(inputs, columns=self.columns, copy=False)
            return pd.DataFrame(dict(zip(self.columns, (c.reshape(-1) for c in inputs.values()), strict=True)))
        if isinstance(inputs, np.ndarray):
            return inputs
        columns = [c.reshape(-1) for c in inputs.values()]
        text = any(c.dtype == object for c in columns)
        return np.column_stack([c.astype(object) if text else c for c in columns])

    def predict(self, inputs: np.ndarray | dict[str, np.ndarray]) -> Outputs:
        matrix = self.model_input(inputs)
        try:
            outputs: list[Any] = [np.asarray(self.estimator.predict(matrix))]
            names = ["label"]
            if hasattr(self.estimator, "predict_proba"):
                outputs.append(np.asarray(self.estimator.predict_proba(matrix)))
                names.append("probabilities")
        except (ValueError, TypeError) as exc:  # e.g. a category the encoder never saw
            raise ValidationError(
                f"the model refused the input: {str(exc).splitlines()[0][:200]}", field="inputs"
            ) from exc
        return Outputs(names, outputs, len(matrix))
