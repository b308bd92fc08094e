"""Small in-process targets for the attack suites' unit tests: seeded data and fitted scikit-learn models."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression


@dataclass(frozen=True)
class Toy:
    """Two informative features of different scales plus a noise feature; labels from a linear rule."""

    x: np.ndarray
    y: np.ndarray


def toy(n: int, seed: int) -> Toy:
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.normal(0, 1, n), rng.normal(0, 100, n), rng.normal(0, 1, n)])
    return Toy(x, (x[:, 0] + x[:, 1] / 100 > 0).astype(np.int64))


def linear(data: Toy) -> LogisticRegression:
    return LogisticRegression(C=100.0).fit(data.x, data.y)


def forest(data: Toy, *, seed: int = 0) -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=30, random_state=seed).fit(data.x, data.y)
