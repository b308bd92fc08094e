"""The model under attack as the attack suites see it: rows in, labels (and probabilities) out, within a budget.

An attack never talks to the gateway directly: it asks a :class:`LabelOracle`, which charges
every answered row to a :class:`QueryBudget` (rows and a deadline) and ends the attack with
:class:`BudgetSpent` when either runs out, or when the gateway's rate limit would keep it
waiting past the deadline. :class:`TargetOracle` is the real one (``POST
/v1/models/{name}/predict`` through the run's target); tests use a fitted estimator.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from mlwarden.errors import InvalidInput

if TYPE_CHECKING:
    from mlwarden.redteam.target import Target


class StopReason(StrEnum):
    """Why an attack stopped before it had done all it meant to."""

    BUDGET = "budget"
    TIME = "time"
    RATE_LIMIT = "rate_limit"


class BudgetSpent(Exception):
    """Raised inside an attack when a query would go past its budget or deadline (caught by the suite)."""

    def __init__(self, reason: StopReason) -> None:
        super().__init__(f"attack stopped: {reason.value}")
        self.reason = reason


@dataclass(slots=True)
class QueryBudget:
    """How many rows an attack may have answered and until when (monotonic clock); counts what it spent."""

    rows: int
    deadline: float
    spent: int = 0
    requests: int = 0
    rate_limited: int = 0
    """429 answers seen (each one also cost a request)."""
    stopped: StopReason | None = None
    clock: Any = field(default=time.monotonic, repr=False)

    @classmethod
    def of(cls, rows: int, seconds: float) -> QueryBudget:
        """``rows`` answered rows within ``seconds`` from now."""
        return cls(rows=rows, deadline=time.monotonic() + seconds)

    @property
    def remaining(self) -> int:
        """Rows still allowed."""
        return max(0, self.rows - self.spent)

    def time_left(self) -> float:
        """Seconds until the deadline (negative once past it)."""
        return float(self.deadline - self.clock())

    def stop(self, reason: StopReason) -> BudgetSpent:
        """Record why the attack stops and return the exception that unwinds it."""
        self.stopped = reason
        return BudgetSpent(reason)

    def check(self, rows: int) -> None:
        """Raise :class:`BudgetSpent` if ``rows`` more rows would go past the budget or the deadline is past."""
        if rows > self.remaining:
            raise self.stop(StopReason.BUDGET)
        if self.time_left() <= 0:
            raise self.stop(StopReason.TIME)


@dataclass(frozen=True, slots=True)
class Answers:
    """What the model said about some rows: class indices, and class probabilities when it returns them."""

    labels: np.ndarray
    probabilities: np.ndarray | None = None

    def one_hot(self, classes: int) -> np.ndarray:
        """The labels as an ``(rows, classes)`` one-hot matrix (what a decision-based attack sees)."""
        out = np.zeros((len(self.labels), classes), dtype=np.float32)
        out[np.arange(len(self.labels)), self.labels] = 1.0
        return out

    def scores(self, classes: int) -> np.ndarray:
        """Probabilities when the model gives them, else the one-hot labels."""
        if self.probabilities is not None and self.probabilities.shape[1] == classes:
            return self.probabilities
        return self.one_hot(classes)


class LabelOracle(Protocol):
    """A model that answers rows of numbers within a budget."""

    budget: QueryBudget

    def predict(self, rows: np.ndarray) -> Answers:
        """Answer every row (charged to the budget) or raise :class:`BudgetSpent`."""
        ...


def classes_of(answers: Answers, at_least: int = 2) -> int:
    """How many classes the answers show (probability width, else the largest label + 1)."""
    found = int(answers.labels.max()) + 1 if len(answers.labels) else 0
    if answers.probabilities is not None:
        found = max(found, answers.probabilities.shape[1])
    return max(at_least, found)


def parse_prediction(prediction: Any) -> tuple[int, list[float] | None]:
    """One row of the gateway's ``predictions``: its integer label and probabilities (None if absent).

    A classifier's outputs are a dict such as ``{"label": 1, "probabilities": [0.1, 0.9]}``:
    the label is the first integer output, the probabilities the first list of numbers; a model
    that gives only probabilities is read as their argmax.
    """
    values = list(prediction.values()) if isinstance(prediction, dict) else [prediction]
    label = next((v for v in values if isinstance(v, int) and not isinstance(v, bool)), None)
    probabilities = next(
        (v for v in values if isinstance(v, list) and v and all(isinstance(p, int | float) for p in v)), None
    )
    if isinstance(probabilities, list) and probabilities and isinstance(probabilities[0], list):
        probabilities = probabilities[0]
    if label is None and probabilities is not None:
        label = int(np.argmax(probabilities))
    if label is None or label < 0:
        raise InvalidInput(
            f"the attack suites need a classifier with integer labels 0..k-1; the model answered {str(prediction)[:80]}"
        )
    return label, [float(p) for p in probabilities] if probabilities is not None else None


def answers_of(predictions: list[Any]) -> Answers:
    """The gateway's ``predictions`` list as :class:`Answers`."""
    parsed = [parse_prediction(p) for p in predictions]
    labels = np.array([label for label, _ in parsed], dtype=np.int64)
    rows = [probabilities for _, probabilities in parsed]
    if rows and all(r is not None and len(r) == len(rows[0] or ()) for r in rows):
        return Answers(labels, np.array(rows, dtype=np.float64))
    return Answers(labels)


class TargetOracle:
    """A :class:`~mlwarden.redteam.target.Target`'s predict route as a :class:`LabelOracle`.

    Rows go in requests of ``rows_per_request`` (as lists of numbers, the feature order of the
    suite's rows). A 429 is counted and waited out (its ``Retry-After``) while the deadline
    allows; past it, the attack stops with :attr:`StopReason.RATE_LIMIT`. Any other refusal
    is the target's :class:`~mlwarden.redteam.target.PredictRefused`: the suite cannot attack
    a model it may not query, and the run reports it as not checked.
    """

    def __init__(self, target: Target, budget: QueryBudget, *, rows_per_request: int = 100) -> None:
        if rows_per_request < 1:
            raise InvalidInput(f"rows per request must be at least 1, got {rows_per_request}")
        self.target = target
        self.budget = budget
        self.rows_per_request = rows_per_request

    def predict(self, rows: np.ndarray) -> Answers:
        """Answer ``rows`` in as many requests as needed; each answered request is charged as it comes.

        Raises :class:`BudgetSpent` before sending anything when the rows do not fit the budget,
        or between requests when the deadline passes or the rate limit outlasts it.
        """
        data = np.asarray(rows, dtype=np.float64)
        self.budget.check(len(data))
        predictions: list[Any] = []
        for start in range(0, len(data), self.rows_per_request):
            chunk = data[start : start + self.rows_per_request].tolist()
            predictions += self._ask(chunk)
            self.budget.spent += len(chunk)
        return answers_of(predictions)

    def _ask(self, rows: list[list[float]]) -> list[Any]:
        from mlwarden.redteam.target import BudgetExhausted, RateLimitedByTarget

        while True:
            if self.budget.time_left() <= 0:
                raise self.budget.stop(StopReason.TIME)
            if self.target.remaining < len(rows):
                raise self.budget.stop(StopReason.BUDGET)  # the run's budget, shared by every suite
            self.budget.requests += 1
            try:
                predictions = self.target.predict(rows)
            except BudgetExhausted:
                raise self.budget.stop(StopReason.BUDGET) from None
            except RateLimitedByTarget as exc:
                self.budget.rate_limited += 1
                wait = retry_after(exc.reply.headers.get("retry-after"))
                if wait >= self.budget.time_left():
                    raise self.budget.stop(StopReason.RATE_LIMIT) from None
                time.sleep(wait)  # an attacker backs off as told, then comes back
                continue
            if len(predictions) != len(rows):
                raise InvalidInput("the gateway's answer has no prediction per row")
            return predictions


def retry_after(value: str | None) -> float:
    """Seconds from a ``Retry-After`` header (1 when absent or not a non-negative number of seconds)."""
    try:
        wait = float(value) if value is not None else 1.0
    except ValueError:
        return 1.0
    return wait if math.isfinite(wait) and wait >= 0 else 1.0
