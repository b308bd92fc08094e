"""Two reference judges of each label: the reference neighbourhood (kNN) and a reference model.

A row's agreement is the larger of the probabilities the two judges give its label. Fitting
reads the reference only (standardisation, a logistic regression, and the reference's own
rate of contradicted labels from leave-one-out neighbours and cross-validated predictions);
it is done once per reference and kept as plain arrays. Judging a row reads that row and the
fitted arrays only, so a batch judged in chunks gets the same agreements as judged whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

FLIP_AGREEMENT = 0.3
"""A row is flagged when neither reference judge gives its label more than this."""
FLIP_DECISIVE = 0.1
"""The batch decision counts only rows both judges contradict this strongly (and compares with the reference)."""
NEIGHBOURS = 15


@dataclass(frozen=True, slots=True)
class LabelJudges:
    """The fitted judges: standardisation, the scaled reference with its labels, the model, the natural rate."""

    classes: np.ndarray
    """The reference's distinct labels, sorted; other arrays name a label by its index here."""
    mean: np.ndarray
    scale: np.ndarray
    reference: np.ndarray
    """The reference rows, standardised."""
    reference_labels: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    natural: float
    """The share of reference rows whose own label both judges contradict (at least 0.2%)."""

    @classmethod
    def fit(cls, ref_x: np.ndarray, ref_y: np.ndarray) -> LabelJudges:
        """Fit both judges on the reference and measure the reference's own disagreement."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import cross_val_predict
        from sklearn.neighbors import KNeighborsClassifier
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(ref_x)
        ref_scaled = scaler.transform(ref_x)
        classes = np.unique(ref_y)
        ref_index = np.searchsorted(classes, ref_y)
        knn = KNeighborsClassifier(n_neighbors=min(NEIGHBOURS, len(ref_y) - 1)).fit(ref_scaled, ref_index)
        model = LogisticRegression(max_iter=2000, C=1.0).fit(ref_scaled, ref_index)
        folds = max(2, min(5, int(np.bincount(ref_index).min())))
        ref_model = cross_val_predict(
            LogisticRegression(max_iter=2000, C=1.0), ref_scaled, ref_index, cv=folds, method="predict_proba"
        )
        neighbours = knn.kneighbors(ref_scaled, n_neighbors=min(NEIGHBOURS + 1, len(ref_y)), return_distance=False)
        own = np.maximum(
            (ref_index[neighbours[:, 1:]] == ref_index[:, None]).mean(axis=1),
            ref_model[np.arange(len(ref_y)), ref_index],
        )
        natural = max(float((own <= FLIP_DECISIVE).mean()), 0.002)
        return cls(
            classes=classes, mean=np.asarray(scaler.mean_, dtype=np.float64),
            scale=np.asarray(scaler.scale_, dtype=np.float64), reference=ref_scaled, reference_labels=ref_index,
            coef=np.asarray(model.coef_, dtype=np.float64), intercept=np.asarray(model.intercept_, dtype=np.float64),
            natural=natural,
        )  # fmt: skip

    @property
    def neighbours(self) -> int:
        return min(NEIGHBOURS, len(self.reference_labels) - 1)

    def neighbourhood(self) -> Any:
        """The kNN judge over the stored reference (built once per screening, used for every chunk).

        Distances are computed in float32 (twice the speed of float64 on the batch's rows);
        standardised features need no more precision to rank 15 neighbours.
        """
        from sklearn.neighbors import KNeighborsClassifier

        knn = KNeighborsClassifier(n_neighbors=self.neighbours)
        return knn.fit(self.reference.astype(np.float32), self.reference_labels)

    def model_proba(self, scaled: np.ndarray) -> np.ndarray:
        """The reference model's class probabilities (logistic regression: sigmoid for two classes, else softmax)."""
        from scipy.special import expit, softmax

        logits = scaled @ self.coef.T + self.intercept
        if self.coef.shape[0] == 1:
            positive = expit(logits[:, 0])
            return np.column_stack([1.0 - positive, positive])
        return np.asarray(softmax(logits, axis=1))

    def model_agreement(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The model's probability of each row's label, and the label's index in ``classes``.

        A label the reference never holds gets probability 0 and index -1.
        """
        known = np.isin(y, self.classes)
        index = np.where(known, np.searchsorted(self.classes, np.where(known, y, self.classes[0])), -1)
        proba = self.model_proba((x - self.mean) / self.scale)
        return np.where(known, proba[np.arange(len(y)), np.maximum(index, 0)], 0.0), index

    def neighbour_agreement(self, x: np.ndarray, index: np.ndarray, neighbourhood: Any) -> np.ndarray:
        """The share of each row's reference neighbours that hold its label (``index``, as from ``model_agreement``)."""
        scaled = ((x - self.mean) / self.scale).astype(np.float32)
        return neighbourhood.predict_proba(scaled)[np.arange(len(index)), index]  # type: ignore[no-any-return]

    def agreement(self, x: np.ndarray, y: np.ndarray, neighbourhood: Any) -> np.ndarray:
        """Each row's agreement with its label: 0 for a label the reference never holds.

        The neighbourhood is asked only about rows the model gives at most ``FLIP_AGREEMENT``:
        elsewhere the row is not flagged whatever its neighbours say, and its agreement is the
        model's (a lower bound, above every threshold).
        """
        agreement, index = self.model_agreement(x, y)
        doubtful = np.flatnonzero((index >= 0) & (agreement <= FLIP_AGREEMENT))
        if doubtful.size:
            near = self.neighbour_agreement(x[doubtful], index[doubtful], neighbourhood)
            agreement[doubtful] = np.maximum(agreement[doubtful], near)
        return agreement
