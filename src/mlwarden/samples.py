"""Small, real sample artifacts built from data scikit-learn ships: for the demo, tests and benchmarks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import polars as pl

CARD = """---
license: apache-2.0
language: en
tags: [tabular, classification]
datasets: [breast-cancer-train]
metrics: [accuracy, roc_auc]
model-index:
  - name: {name}
    results:
      - task: {{type: tabular-classification}}
        dataset: {{name: breast-cancer, type: sklearn}}
        metrics:
          - {{type: accuracy, value: {accuracy:.4f}}}
---
# {name}

## Intended use
Demonstration classifier of benign versus malignant tumours from the Wisconsin breast
cancer features. Not for clinical use.

## Limitations
Trained on 569 rows from one hospital; not validated on other populations.

## Training data
scikit-learn's bundled breast-cancer dataset (30 numeric features).

## Evaluation
Accuracy {accuracy:.4f} on a held-out quarter of the data.

## Fairness
The data carries no sensitive attributes; no group analysis is possible.

## Owners
ml-platform@example.com
"""


@dataclass(frozen=True, slots=True)
class SampleModel:
    """Files of one sample model."""

    onnx: Path
    skops: Path
    card: Path
    train_csv: Path
    eval_csv: Path
    signature: Path
    accuracy: float
    feature_names: list[str]


def breast_cancer_model(folder: Path, *, name: str = "breast-cancer", trees: int = 20, seed: int = 0) -> SampleModel:
    """Train a random forest on the bundled data and write ONNX, skops, card, CSVs and a signature file."""
    import json

    import polars as pl
    import skops.io as sio
    from skl2onnx import to_onnx
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    folder.mkdir(parents=True, exist_ok=True)
    data = load_breast_cancer()
    x, y = data.data.astype(np.float32), data.target
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
    model = RandomForestClassifier(n_estimators=trees, max_depth=6, random_state=seed).fit(x_train, y_train)
    accuracy = float(model.score(x_test, y_test))
    onnx_model = to_onnx(model, x_train[:1], options={id(model): {"zipmap": False}}, target_opset=17)
    paths = SampleModel(
        onnx=folder / f"{name}.onnx",
        skops=folder / f"{name}.skops",
        card=folder / f"{name}.md",
        train_csv=folder / "train.csv",
        eval_csv=folder / "eval.csv",
        signature=folder / "signature.json",
        accuracy=accuracy,
        feature_names=[str(n) for n in data.feature_names],
    )
    paths.onnx.write_bytes(onnx_model.SerializeToString())
    paths.skops.write_bytes(sio.dumps(model))
    paths.card.write_text(CARD.format(name=name, accuracy=accuracy))
    names = [n.replace(" ", "_") for n in data.feature_names]
    for file, xs, ys in ((paths.train_csv, x_train, y_train), (paths.eval_csv, x_test, y_test)):
        frame = pl.DataFrame({n: xs[:, i] for i, n in enumerate(names)}).with_columns(pl.Series("target", ys))
        frame.write_csv(file)
    low, high = x.min(axis=0), x.max(axis=0)
    spec = {
        "features": [
            {
                "name": n,
                "dtype": "float32",
                "min": 0.0,
                "max": float(round(high[i] * 4 + 1, 3)) if low[i] >= 0 else None,
            }
            for i, n in enumerate(names)
        ]
    }
    paths.signature.write_text(json.dumps(spec, indent=1))
    return paths


@dataclass(frozen=True, slots=True)
class FairnessZoo:
    """Synthetic tabular data with a ``group`` column, and models built on purpose for the gates."""

    train_csv: Path
    eval_csv: Path
    good: Path
    weak: Path
    biased: Path
    features: tuple[str, ...] = ("f0", "f1", "f2", "group")


def _toy_frame(n: int, seed: int) -> Any:
    import polars as pl

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    group = rng.integers(0, 2, n).astype(np.float32)
    target = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    return pl.DataFrame({"f0": x[:, 0], "f1": x[:, 1], "f2": x[:, 2], "group": group, "target": target})


def fairness_zoo(folder: Path) -> FairnessZoo:
    """A good model, a weak one (noise features only) and a biased one (group 1 always approved), as ONNX."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    folder.mkdir(parents=True, exist_ok=True)
    train, evaluation = _toy_frame(2000, 1), _toy_frame(800, 2)
    train.write_csv(folder / "train.csv")
    evaluation.write_csv(folder / "eval.csv")
    features = ["f0", "f1", "f2", "group"]
    x = train.select(features).to_numpy().astype(np.float32)
    y = train.get_column("target").to_numpy()

    def save(model: Any, name: str) -> Path:
        options = {id(model): {"zipmap": False}}
        (folder / name).write_bytes(to_onnx(model, x[:1], options=options, target_opset=17).SerializeToString())
        return folder / name

    good = LogisticRegression().fit(x, y)
    noise = LogisticRegression().fit(x[:, [2, 3]], y)
    weak = LogisticRegression()
    weak.coef_ = np.hstack([np.zeros((1, 2)), noise.coef_])
    weak.intercept_, weak.classes_, weak.n_features_in_ = noise.intercept_, noise.classes_, 4
    biased = LogisticRegression(C=100).fit(x, np.where(x[:, 3] == 1, 1, y))
    return FairnessZoo(folder / "train.csv", folder / "eval.csv", save(good, "good.onnx"), save(weak, "weak.onnx"),
                       save(biased, "biased.onnx"))  # fmt: skip


@dataclass(frozen=True, slots=True)
class MixedSample:
    """A scikit-learn pipeline over a text column and numbers, saved with skops, with its data."""

    pipeline: Path
    ordinal: Path
    card: Path
    train_csv: Path
    eval_csv: Path
    cities: tuple[str, ...] = ("lille", "lyon", "nice", "paris")


def mixed_frame(n: int, seed: int) -> pl.DataFrame:
    """Rows of income, age, city, an unused group and a target that depends on all three features."""
    import polars as pl

    rng = np.random.default_rng(seed)
    income = rng.normal(50, 10, n).round(2)
    age = rng.integers(18, 80, n)
    city = rng.choice(["paris", "lyon", "nice", "lille"], n)
    bonus = np.select([city == "paris", city == "lille"], [8.0, -4.0], 0.0)
    target = (income + bonus + 0.05 * (age - 50) + rng.normal(0, 1.5, n) > 52).astype(np.int64)
    group = rng.integers(0, 2, n)
    return pl.DataFrame({"income": income, "age": age, "city": city, "group": group, "target": target})


def mixed_pipeline_model(folder: Path) -> MixedSample:
    """``OneHotEncoder`` on ``city`` plus scaled ``income`` and ``age`` into a logistic regression.

    Also an ``OrdinalEncoder`` variant, whose encoder is not on the built-in skops allow-list.
    The evaluation CSV carries an extra ``group`` column the model does not read.
    """
    import skops.io as sio
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    folder.mkdir(parents=True, exist_ok=True)
    train, evaluation = mixed_frame(1500, 3), mixed_frame(600, 4)
    paths = MixedSample(folder / "pipeline.skops", folder / "ordinal.skops", folder / "card.md",
                        folder / "train.csv", folder / "eval.csv")  # fmt: skip
    train.write_csv(paths.train_csv)
    evaluation.write_csv(paths.eval_csv)
    import pandas as pd

    x = pd.DataFrame({c: train.get_column(c).to_numpy() for c in ("income", "age", "city")})
    y = train.get_column("target").to_numpy()
    for path, encoder in ((paths.pipeline, OneHotEncoder()), (paths.ordinal, OrdinalEncoder())):
        columns = ColumnTransformer([("city", encoder, ["city"]), ("num", StandardScaler(), ["income", "age"])])
        model = Pipeline([("prepare", columns), ("classify", LogisticRegression(max_iter=500))]).fit(x, y)
        path.write_bytes(sio.dumps(model))
    paths.card.write_text(
        CARD.format(name="mixed", accuracy=0.9)
        .replace("breast-cancer-train", "mixed-train")
        .replace("(30 numeric features)", "(income, age, city)")
    )
    return paths
