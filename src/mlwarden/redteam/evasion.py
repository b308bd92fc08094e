"""Evasion: ART's decision-based attacks (HopSkipJump, Boundary) through the gateway, verified at the gateway.

The attacks see only labels: an ART ``BlackBoxClassifier`` whose ``predict`` asks the
oracle. They work in the unit box (each feature scaled by the feature space's span), so
their L2 steps treat every feature alike and the perturbation they minimise is the one
reported: the root mean square of the per-feature change as a fraction of its range. Each
attack starts from the nearest row of the attacker's sample that the model labels
differently (``x_adv_init``), as an attacker with a few real examples would. An example
counts as a success only if the gateway, asked again afterwards, labels it differently
from the original row.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mlwarden.redteam.art_loader import load_art
from mlwarden.redteam.attack_data import attack_data, suite_budget
from mlwarden.redteam.feature_space import FeatureSpace
from mlwarden.redteam.findings import ChartPoint, Check, CheckStatus, Finding, FindingSeverity, SuiteResult
from mlwarden.redteam.oracle import Answers, BudgetSpent, LabelOracle, StopReason, TargetOracle, classes_of
from mlwarden.redteam.suites import SuiteOptions, register

if TYPE_CHECKING:
    from mlwarden.redteam.target import Target

SUITE = "evasion"
ATTACKS = ("hopskipjump", "boundary")
POOL = 100
"""Rows of the attacker's sample asked about first: the attacked rows and the starting points."""


@dataclass(frozen=True, slots=True)
class EvasionOptions:
    """Which attacks, on how many rows, how hard each tries."""

    attacks: tuple[str, ...] = ATTACKS
    samples: int = 5
    """Rows attacked per attack."""
    batch_size: int = 64
    """Rows per predict call the attacks make (one gateway request each, at most)."""
    hsj_max_iter: int = 8
    hsj_max_eval: int = 50
    hsj_init_eval: int = 10
    boundary_max_iter: int = 30
    boundary_num_trial: int = 5
    boundary_sample_size: int = 5
    seed: int = 0
    high_success: float = 0.5
    high_perturbation: float = 0.02
    medium_perturbation: float = 0.10


@dataclass(frozen=True, slots=True)
class AttackOutcome:
    """One attack's verified results: rows attacked, the adversarial rows whose label flipped at the gateway."""

    attack: str
    attempted: int
    originals: np.ndarray
    adversarials: np.ndarray
    """Successful adversarial rows (in feature units), aligned with ``originals``."""
    original_labels: np.ndarray
    adversarial_labels: np.ndarray
    perturbations: tuple[float, ...]
    """Relative L2 perturbation of each success (see :meth:`FeatureSpace.relative_l2`)."""
    queries: int
    stopped: StopReason | None = None

    @property
    def succeeded(self) -> int:
        """Verified adversarial examples."""
        return len(self.perturbations)

    @property
    def success_rate(self) -> float:
        """Verified successes over rows attacked (0 when none was attacked)."""
        return self.succeeded / self.attempted if self.attempted else 0.0

    @property
    def median_perturbation(self) -> float | None:
        """Median relative perturbation of the successes (None without any)."""
        return float(np.median(self.perturbations)) if self.perturbations else None

    def title(self) -> str:
        """One line: how many rows flipped, by how much."""
        if not self.attempted:
            return (
                f"{self.attack}: no row attacked within the budget ({self.stopped.value if self.stopped else 'none'})"
            )
        if not self.succeeded:
            return f"{self.attack}: none of {self.attempted} attacked rows flipped at the gateway"
        return (f"{self.attack}: {self.succeeded}/{self.attempted} rows flipped at the gateway, median "
                f"perturbation {self.median_perturbation:.1%} of the feature ranges")  # fmt: skip

    def metrics(self) -> dict[str, Any]:
        """The numbers for the report (and the finding's evidence)."""
        median = self.median_perturbation
        return {
            "attempted": self.attempted,
            "succeeded": self.succeeded,
            "success_rate": round(self.success_rate, 4),
            "median_perturbation": None if median is None else round(median, 5),
            "queries": self.queries,
            "stopped_by": self.stopped.value if self.stopped else None,
        }


@dataclass(frozen=True, slots=True)
class EvasionResult:
    """Every attack's outcome, the histogram of their perturbations and the time taken."""

    outcomes: tuple[AttackOutcome, ...]
    seconds: float
    options: EvasionOptions = field(default_factory=EvasionOptions)

    def histogram(self, bins: int = 10) -> list[ChartPoint]:
        """Successes per perturbation bin: ``bins`` equal bins from 0 to the largest perturbation (0.01 grid)."""
        values = np.array([p for o in self.outcomes for p in o.perturbations], dtype=np.float64)
        top = max(0.01, math.ceil(float(values.max()) * 100) / 100) if len(values) else 0.01
        counts, edges = np.histogram(values, bins=bins, range=(0.0, top))
        return [{"bin": round(float(edges[i]), 6), "count": float(c)} for i, c in enumerate(counts)]

    def findings(self) -> list[Finding]:
        """One finding per attack that flipped rows (severity by :func:`evasion_severity`)."""
        out = []
        for outcome in self.outcomes:
            severity = evasion_severity(outcome, self.options)
            if severity is not None:
                out.append(Finding(f"{SUITE}.{outcome.attack}", SUITE, severity, outcome.title(), outcome.metrics(),
                                   _remedy(self.options)))  # fmt: skip
        return out

    def checks(self) -> list[Check]:
        """One probe per attack: failed when it flipped rows, passed when none flipped, not checked when none was
        attacked (the budget or the time ran out first)."""
        return [Check(f"{SUITE}.{o.attack}", f"{o.attack} cannot flip the model's answers", self._status(o), o.title())
                for o in self.outcomes]  # fmt: skip

    def _status(self, outcome: AttackOutcome) -> CheckStatus:
        if evasion_severity(outcome, self.options) is not None:
            return CheckStatus.FAILED
        return CheckStatus.PASSED if outcome.attempted else CheckStatus.NOT_CHECKED  # no row attacked proves nothing


def evasion_severity(outcome: AttackOutcome, options: EvasionOptions) -> FindingSeverity | None:
    """high: at least ``high_success`` of the rows flipped with a median perturbation <= ``high_perturbation``;
    medium: some flipped with a median <= ``medium_perturbation``; low: flips only with larger changes."""
    median = outcome.median_perturbation
    if median is None:
        return None
    if outcome.success_rate >= options.high_success and median <= options.high_perturbation:
        return FindingSeverity.HIGH
    return FindingSeverity.MEDIUM if median <= options.medium_perturbation else FindingSeverity.LOW


def _remedy(o: EvasionOptions) -> str:
    rule = (f"Rule: high when >= {o.high_success:.0%} of attacked rows flip with a median change <= "
            f"{o.high_perturbation:.0%} of the feature ranges; medium when the median is <= "
            f"{o.medium_perturbation:.0%}; low for larger changes.")  # fmt: skip
    return (f"{rule} The model's decision boundary lies close to real rows and label-only answers were enough "
            "to find it: these attacks need hundreds of near-duplicate queries per row, so rate-limit per caller "
            "(MLWARDEN_RATE_LIMIT, MLWARDEN_MAX_ROWS) and alert on bursts of near-identical inputs; retrain with "
            "adversarial or noise-augmented examples, or add a margin (abstain near the boundary).")  # fmt: skip


class _UnitBoxModel:
    """The oracle seen through the unit box: ART asks about ``z``, the oracle answers ``lows + z * span``."""

    def __init__(self, oracle: LabelOracle, space: FeatureSpace, classes: int) -> None:
        self.oracle, self.space, self.classes = oracle, space, classes
        self.cap: int | None = None
        """Budget ``spent`` this attack may reach (its share), or None for the whole budget."""

    def to_features(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(self.space.lows + np.asarray(z, np.float64) * self.space.span, np.float64)

    def to_unit(self, x: np.ndarray) -> np.ndarray:
        return np.asarray((np.asarray(x, np.float64) - self.space.lows) / self.space.span, np.float32)

    def predict_fn(self, z: np.ndarray) -> np.ndarray:
        if self.cap is not None and self.oracle.budget.spent + len(z) > self.cap:
            raise BudgetSpent(StopReason.BUDGET)  # this attack's share is spent; the next one still has its own
        return self.oracle.predict(self.to_features(z)).one_hot(self.classes)


def _art_attack(name: str, classifier: object, options: EvasionOptions) -> object:
    load_art()
    from art.attacks.evasion import BoundaryAttack, HopSkipJump

    if name == "hopskipjump":
        return HopSkipJump(classifier, batch_size=options.batch_size, targeted=False, norm=2,
                           max_iter=options.hsj_max_iter, max_eval=options.hsj_max_eval,
                           init_eval=options.hsj_init_eval, init_size=20, verbose=False)  # fmt: skip
    return BoundaryAttack(classifier, batch_size=options.batch_size, targeted=False, max_iter=options.boundary_max_iter,
                          num_trial=options.boundary_num_trial, sample_size=options.boundary_sample_size,
                          init_size=20, verbose=False)  # fmt: skip


def _starts(pool: np.ndarray, pool_labels: np.ndarray, row: np.ndarray, label: int) -> np.ndarray | None:
    """The nearest pool row (unit box) that the model labels differently from ``label``, or None."""
    other = pool[pool_labels != label]
    if not len(other):
        return None
    return np.asarray(other[np.argmin(((other - row) ** 2).sum(axis=1))][None, :], np.float32)


def run_evasion(
    oracle: LabelOracle, *, rows: np.ndarray, space: FeatureSpace, options: EvasionOptions | None = None
) -> EvasionResult:
    """Attack ``options.samples`` of ``rows`` with each attack, then re-ask the gateway about what they produced.

    ``rows`` is the attacker's sample: the first rows are attacked, all of them serve as
    starting points of the other class.
    """
    options = options or EvasionOptions()
    started = time.monotonic()
    load_art()
    from art.estimators.classification import BlackBoxClassifier

    data = space.clip(np.asarray(rows, np.float64))
    try:
        first = oracle.predict(data)
    except BudgetSpent:
        return EvasionResult((), time.monotonic() - started, options)
    model = _UnitBoxModel(oracle, space, classes_of(first))
    classifier = BlackBoxClassifier(model.predict_fn, input_shape=(space.width,), nb_classes=model.classes,
                                    clip_values=(0.0, 1.0))  # fmt: skip
    np.random.seed(options.seed)  # ART's attacks draw from NumPy's global generator
    outcomes = []
    for i, name in enumerate(options.attacks):
        budget = oracle.budget
        share = budget.remaining // (len(options.attacks) - i) - options.samples  # rows kept back to verify
        model.cap = budget.spent + max(0, share)  # an equal share of what is left
        outcomes.append(_attack(name, _art_attack(name, classifier, options), model, data, first, options))
    return EvasionResult(tuple(outcomes), time.monotonic() - started, options)


def _attack(name: str, attack: object, model: _UnitBoxModel, data: np.ndarray, first: Answers,
            options: EvasionOptions) -> AttackOutcome:  # fmt: skip
    oracle = model.oracle
    spent = oracle.budget.spent
    unit, labels = model.to_unit(data), first.labels
    attacked: list[int] = []
    found: list[np.ndarray] = []
    stopped: StopReason | None = None
    for i in range(min(options.samples, len(data))):
        start = _starts(unit, labels, unit[i], int(labels[i]))
        if start is None:
            continue
        one_hot = np.eye(model.classes, dtype=np.float32)[labels[i : i + 1]]
        try:
            z = attack.generate(unit[i : i + 1], y=one_hot, x_adv_init=start)  # type: ignore[attr-defined]
        except BudgetSpent as exc:
            stopped = exc.reason
            break
        attacked.append(i)
        found.append(np.asarray(z, np.float64)[0])
    queries = oracle.budget.spent - spent
    return _verified(name, model, data, labels, attacked, found, queries, stopped)


def _verified(name: str, model: _UnitBoxModel, data: np.ndarray, labels: np.ndarray, attacked: list[int],
              found: list[np.ndarray], queries: int, stopped: StopReason | None) -> AttackOutcome:  # fmt: skip
    """Ask the gateway about every adversarial row once more; keep those whose label differs from the original."""
    oracle = model.oracle
    originals = data[attacked] if attacked else np.zeros((0, data.shape[1]))
    adversarials = model.to_features(np.array(found)) if found else np.zeros((0, data.shape[1]))
    try:
        now = oracle.predict(adversarials).labels if len(adversarials) else np.zeros(0, np.int64)
    except BudgetSpent:
        now = labels[attacked] if attacked else np.zeros(0, np.int64)  # unverified counts as no success
    flipped = now != labels[attacked] if attacked else np.zeros(0, bool)
    sizes = model.space.relative_l2(originals[flipped], adversarials[flipped]) if flipped.any() else np.zeros(0)
    return AttackOutcome(name, len(attacked), originals[flipped], adversarials[flipped], labels[attacked][flipped],
                         now[flipped], tuple(float(s) for s in sizes), queries, stopped)  # fmt: skip


@register(SUITE)
def evasion_suite(target: Target, options: SuiteOptions) -> SuiteResult:
    """Attack the first rows of the attacker's own sample; the rest of it offers starting points."""
    data = attack_data(options, SUITE)
    budget = suite_budget(target, options, SUITE)
    settings = EvasionOptions(seed=options.seed)
    result = run_evasion(TargetOracle(target, budget), rows=data.sample[:POOL], space=data.space, options=settings)
    metrics: dict[str, Any] = {o.attack: o.metrics() for o in result.outcomes}
    metrics["seconds"] = round(result.seconds, 2)
    return SuiteResult(SUITE, result.findings(), metrics, budget.spent, result.seconds,
                       {"evasion_perturbation": result.histogram()}, result.checks())  # fmt: skip
