"""A fitted scikit-learn classifier as a :class:`~mlwarden.redteam.oracle.LabelOracle` (tests, benchmarks).

It answers in process, with the same budget accounting as the gateway oracle: an attack
cannot tell them apart, which lets unit tests pin an attack's logic without a server.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlwarden.redteam.oracle import Answers, QueryBudget


class EstimatorOracle:
    """``model.predict`` (and ``predict_proba`` when it has one), charged to ``budget`` per call."""

    def __init__(self, model: Any, budget: QueryBudget, *, probabilities: bool = True) -> None:
        self.model = model
        self.budget = budget
        self.probabilities = probabilities and hasattr(model, "predict_proba")

    def predict(self, rows: np.ndarray) -> Answers:
        """Answer every row, or raise ``BudgetSpent`` without answering."""
        data = np.asarray(rows, dtype=np.float32)
        self.budget.check(len(data))
        self.budget.spent += len(data)
        self.budget.requests += 1
        labels = np.asarray(self.model.predict(data), dtype=np.int64)
        return Answers(labels, np.asarray(self.model.predict_proba(data)) if self.probabilities else None)
