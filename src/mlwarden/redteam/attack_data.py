"""The rows the ML attack suites work with: the run's labelled rows as numeric arrays, and the feature box."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlwarden.errors import InvalidInput
from mlwarden.redteam.feature_space import FeatureSpace
from mlwarden.redteam.oracle import QueryBudget
from mlwarden.redteam.suites import LabelledRows, SuiteOptions

if TYPE_CHECKING:
    from mlwarden.redteam.target import Target

SHARES = {"extraction": 0.4, "evasion": 0.45, "membership": 0.15}
"""Each ML suite's share of the run's query budget (``--budget`` is for all of them together)."""


@dataclass(frozen=True, slots=True)
class Labelled:
    """Rows as a ``(rows, features)`` float matrix, with integer labels when the file had them."""

    x: np.ndarray
    y: np.ndarray | None


@dataclass(frozen=True, slots=True)
class AttackData:
    """Training rows (members), held-out rows, and the box both lie in."""

    members: Labelled | None
    holdout: Labelled | None
    space: FeatureSpace

    @property
    def sample(self) -> np.ndarray:
        """The attacker's own rows: the held-out ones when given (never the training set), else the training rows."""
        chosen = self.holdout or self.members
        if chosen is None:  # attack_data() never builds one without rows
            raise InvalidInput("no rows to attack with")
        return chosen.x


def attack_data(options: SuiteOptions, suite: str) -> AttackData:
    """The options' reference and holdout rows as numbers (a one-line error naming what is missing)."""
    first = next((r.rows[0] for r in (options.reference, options.holdout) if r is not None and r.rows), None)
    if first is None:
        raise InvalidInput(f"the {suite} suite needs rows the model takes: give the training set or held-out rows")
    names = [f.name for f in options.features] or list(first)
    members, holdout = _labelled(options.reference, names), _labelled(options.holdout, names)
    every = np.concatenate([part.x for part in (members, holdout) if part is not None])
    return AttackData(members, holdout, FeatureSpace.of_rows(every))


def suite_budget(target: Target, options: SuiteOptions, suite: str) -> QueryBudget:
    """The suite's share of ``options.budget`` (never more than the target has left) and ``options.seconds``."""
    return QueryBudget.of(min(int(options.budget * SHARES[suite]), target.remaining), options.seconds)


def _labelled(rows: LabelledRows | None, names: list[str]) -> Labelled | None:
    if rows is None or not rows.rows:
        return None
    x = np.array([[_number(row.get(name), name) for name in names] for row in rows.rows], dtype=np.float64)
    if rows.labels is None or len(rows.labels) != len(rows.rows):
        return Labelled(x, None)
    if not all(_integral(v) for v in rows.labels):
        raise InvalidInput("the ML attack suites need integer class labels 0..k-1 in the label column")
    return Labelled(x, np.array([int(v) for v in rows.labels], dtype=np.int64))


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"the ML attack suites need finite numeric features; {name!r} holds {str(value)[:40]!r}")
    return float(value)


def _integral(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer() and value >= 0
