"""scikit-learn estimators saved with skops, loaded only if every type is on the allow-list."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np

from mlwarden.errors import InvalidInput, UnsafeArtifact
from mlwarden.runtime.interface import Outputs
from mlwarden.runtime.signature import Feature, InputSignature
from mlwarden.runtime.skops_checks import check_estimator

# The explicit allow-list: containers and numpy scalars skops writes, and scikit-learn
# estimators whose loading runs no user code. Anything else in a file is refused by name.
ALLOWED_TYPES = frozenset(
    {
        "builtins.dict", "builtins.list", "builtins.tuple", "builtins.str", "builtins.int", "builtins.float",
        "builtins.bool", "builtins.NoneType", "builtins.slice", "builtins.set", "builtins.frozenset",
        "numpy.ndarray", "numpy.dtype", "numpy.float64", "numpy.float32", "numpy.int64", "numpy.int32",
        "numpy.bool_", "numpy.str_", "numpy.random.mtrand.RandomState",
        "sklearn.pipeline.Pipeline", "sklearn.compose._column_transformer.ColumnTransformer",
        "sklearn.preprocessing._data.StandardScaler", "sklearn.preprocessing._data.MinMaxScaler",
        "sklearn.preprocessing._data.RobustScaler", "sklearn.preprocessing._encoders.OneHotEncoder",
        "sklearn.preprocessing._label.LabelEncoder", "sklearn.impute._base.SimpleImputer",
        "sklearn.linear_model._logistic.LogisticRegression", "sklearn.linear_model._base.LinearRegression",
        "sklearn.linear_model._ridge.Ridge", "sklearn.linear_model._coordinate_descent.Lasso",
        "sklearn.tree._classes.DecisionTreeClassifier", "sklearn.tree._classes.DecisionTreeRegressor",
        "sklearn.tree._tree.Tree", "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.ensemble._forest.RandomForestRegressor", "sklearn.ensemble._gb.GradientBoostingClassifier",
        "sklearn.ensemble._gb.GradientBoostingRegressor", "sklearn.ensemble._iforest.IsolationForest",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.naive_bayes.GaussianNB", "sklearn.neighbors._classification.KNeighborsClassifier",
        "sklearn.svm._classes.SVC", "sklearn.svm._classes.LinearSVC", "sklearn.dummy.DummyClassifier",
        "sklearn._loss.loss.HalfBinomialLoss", "sklearn._loss.link.LogitLink", "sklearn._loss.link.Interval",
        "sklearn.ensemble._gb.BinomialDeviance", "sklearn.dummy.DummyRegressor",
    }
)  # fmt: skip


def types_in(data: bytes) -> list[str]:
    """Every ``module.class`` a skops file's schema names, without loading anything."""
    try:
        schema = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise InvalidInput(f"not a skops file: {exc}") from exc
    found: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("__module__"), str) and isinstance(node.get("__class__"), str):
                found.add(f"{node['__module__']}.{node['__class__']}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return sorted(found)


def check_types(data: bytes) -> list[str]:
    """The file's types; raise :class:`UnsafeArtifact` naming any type not on the allow-list."""
    names = types_in(data)
    refused = [t for t in names if t not in ALLOWED_TYPES]
    if refused:
        raise UnsafeArtifact(
            f"refused skops file: types outside the allow-list: {', '.join(refused)}",
            found=tuple(refused),
            kind="skops",
        )
    return names


class SkopsModel:
    """A scikit-learn estimator; its signature comes from ``feature_names_in_`` / ``n_features_in_``."""

    def __init__(self, data: bytes) -> None:
        import skops.io as sio

        names = check_types(data)
        try:
            self.estimator = sio.loads(data, trusted=names)
        except Exception as exc:  # skops raises many types for damaged files
            raise InvalidInput(f"skops cannot load this model: {str(exc).splitlines()[0][:200]}") from exc
        check_estimator(self.estimator)  # raw indices (tree nodes) checked before anything runs on them
        count = getattr(self.estimator, "n_features_in_", None)
        if not isinstance(count, int):
            raise InvalidInput("the estimator does not say how many features it takes (n_features_in_)")
        feature_names = getattr(self.estimator, "feature_names_in_", None)
        labels = [str(n) for n in feature_names] if feature_names is not None else [f"x{i}" for i in range(count)]
        self.signature = InputSignature(tuple(Feature(n, "float64") for n in labels), "tensor", "X", "float64")

    def predict(self, inputs: np.ndarray | dict[str, np.ndarray]) -> Outputs:
        matrix = inputs if isinstance(inputs, np.ndarray) else np.column_stack(list(inputs.values()))
        outputs: list[Any] = [np.asarray(self.estimator.predict(matrix))]
        names = ["label"]
        if hasattr(self.estimator, "predict_proba"):
            outputs.append(np.asarray(self.estimator.predict_proba(matrix)))
            names.append("probabilities")
        return Outputs(names, outputs, len(matrix))
