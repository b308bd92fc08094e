"""Small, real sample artifacts built from data scikit-learn ships: for the demo, tests and benchmarks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
