"""Model extraction: copy the served model into a scikit-learn surrogate from the gateway's answers.

The attacker holds a small sample of real rows (``seeds``), asks the gateway to label
synthetic rows drawn around them (each seed plus Gaussian noise, ``noise`` times the
sample's per-feature standard deviation, clipped to the feature box), and trains a random
forest on the answers. Fidelity is the share of ``holdout`` rows (never queried by the
attack) on which the surrogate agrees with the served model; it is measured at each
checkpoint of the query count, which gives the fidelity-versus-queries curve.

Why not ART's extraction attacks: ``CopycatCNN`` and ``KnockoffNets`` train the thief with
neural-network arguments (``batch_size``, ``nb_epochs``) that a scikit-learn estimator's
``fit`` rejects; KnockoffNets' random strategy is exactly "label a sample, fit", and its
adaptive strategy refits the thief after every single-row query, needs the true labels of
the attacker's pool and rewards logits. ``FunctionallyEquivalentExtraction`` only applies
to one-hidden-layer ReLU networks. The issue asks for a scikit-learn surrogate trained on
queried points, which is what this does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlwarden.redteam.alert_check import EXTRACTION_RULE, AlertCheck, AlertWatch
from mlwarden.redteam.attack_data import attack_data, suite_budget
from mlwarden.redteam.feature_space import FeatureSpace
from mlwarden.redteam.findings import ChartPoint, Check, CheckStatus, Finding, FindingSeverity, SuiteResult
from mlwarden.redteam.oracle import BudgetSpent, LabelOracle, StopReason, TargetOracle
from mlwarden.redteam.suites import SuiteOptions, register

if TYPE_CHECKING:
    from mlwarden.redteam.target import Target

SUITE = "extraction"
PROBE = "extraction.model-copied"
DEFAULT_CHECKPOINTS = (100, 250, 500, 1000, 2000, 5000, 10_000)
JUDGE_ROWS_PER_REQUEST = 250
"""The holdout is labelled in few requests so that measuring spends little of the rate limit. At most 255:
under ``mlwarden serve`` a prediction of more rows is answered 500 (the ledger writer's wire format
counts an entry's decision ids in one byte)."""


@dataclass(frozen=True, slots=True)
class ExtractionOptions:
    """How far the attack goes: ``queries`` rows at most (the holdout's labels come on top)."""

    queries: int = 2000
    checkpoints: tuple[int, ...] = DEFAULT_CHECKPOINTS
    step: int = 100
    """Rows asked per call: a stop (budget, deadline, rate limit) keeps every step answered before it."""
    noise: float = 0.25
    seed: int = 0
    trees: int = 50
    high_fidelity: float = 0.95
    medium_fidelity: float = 0.85
    alert_wait_seconds: float = 5.0


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """Fidelity of the surrogate trained on the first ``queries`` answered rows."""

    queries: int
    fidelity: float


@dataclass(frozen=True, slots=True)
class ExtractionResult:
    """What the attack reached and what stopped it."""

    curve: tuple[CurvePoint, ...]
    chance_fidelity: float
    """Agreement of a constant guess (the holdout's most common answer): the floor to read fidelity against."""
    queries: int
    requests: int
    rate_limited: int
    stopped: StopReason | None
    alert: AlertCheck
    seconds: float
    options: ExtractionOptions

    @property
    def fidelity(self) -> float:
        """Fidelity at the last point of the curve (0 when the attack got no answer)."""
        return self.curve[-1].fidelity if self.curve else 0.0

    def finding(self) -> Finding | None:
        """The severity rule (see :func:`extraction_severity`) applied to this result; None when no copy was made."""
        severity = extraction_severity(self.fidelity, self.alert, self.options)
        if severity is None:
            return None
        return Finding(PROBE, SUITE, severity, self.title(), self.metrics(), _remedy(severity, self))

    def title(self) -> str:
        """One line: how faithful the copy is, from how many queries, and whether an alert fired."""
        return (f"a surrogate trained on {self.queries} answered queries agrees with the model on "
                f"{self.fidelity:.1%} of held-out rows (chance {self.chance_fidelity:.1%}); "
                f"{EXTRACTION_RULE} alert: {self.alert.value}")  # fmt: skip

    def metrics(self) -> dict[str, Any]:
        """The numbers for the report (and the finding's evidence)."""
        return {
            "fidelity": round(self.fidelity, 4),
            "chance_fidelity": round(self.chance_fidelity, 4),
            "queries": self.queries,
            "requests": self.requests,
            "rate_limited_answers": self.rate_limited,
            "stopped_by": self.stopped.value if self.stopped else None,
            "alert": self.alert.value,
            "seconds": round(self.seconds, 2),
        }

    def chart(self) -> list[ChartPoint]:
        """Fidelity against queries, one point per checkpoint reached."""
        return [{"queries": float(p.queries), "fidelity": round(p.fidelity, 4)} for p in self.curve]


def extraction_severity(fidelity: float, alert: AlertCheck, options: ExtractionOptions) -> FindingSeverity | None:
    """high: a faithful copy (>= ``high_fidelity``) and no alert; medium: faithful but detection not checked, or
    close (>= ``medium_fidelity``) without an alert; low: a close copy that was detected; None: no close copy."""
    if fidelity >= options.high_fidelity:
        return {AlertCheck.NOT_FIRED: FindingSeverity.HIGH, AlertCheck.NOT_CHECKED: FindingSeverity.MEDIUM,
                AlertCheck.FIRED: FindingSeverity.LOW}[alert]  # fmt: skip
    if fidelity >= options.medium_fidelity:
        return FindingSeverity.LOW if alert is AlertCheck.FIRED else FindingSeverity.MEDIUM
    return None


def _remedy(severity: FindingSeverity | None, result: ExtractionResult) -> str:
    o = result.options
    rule = (f"Rule: high when fidelity >= {o.high_fidelity:.0%} and the {EXTRACTION_RULE} alert did not fire; "
            f"medium when >= {o.high_fidelity:.0%} with the alert not checked, or >= {o.medium_fidelity:.0%} "
            f"without an alert; low when such a copy raised the alert.")  # fmt: skip
    if severity is None:
        held = f" ({result.stopped.value} stopped it)" if result.stopped else ""
        return f"{rule} The copy stayed below {o.medium_fidelity:.0%}{held}: nothing to change."
    advice = [
        f"{result.queries} rows in {result.requests} requests were enough",
        "lower MLWARDEN_RATE_LIMIT/MLWARDEN_RATE_BURST or MLWARDEN_MAX_ROWS (the limit counts requests, not rows)",
        "give each caller only the scope and models it needs",
    ]
    if result.alert is AlertCheck.NOT_CHECKED:
        advice.append(f"pass an audit:read token so the run can see whether {EXTRACTION_RULE} fired")
    elif result.alert is AlertCheck.NOT_FIRED:
        advice.append(f"enable the {EXTRACTION_RULE} watch rule or lower its thresholds")
    if result.options.high_fidelity <= result.fidelity:
        advice.append("serve labels without probabilities where callers do not need them")
    return f"{rule} {'; '.join(advice)}."


def synthetic_queries(seeds: np.ndarray, space: FeatureSpace, count: int, noise: float,
                      rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """``count`` rows: random seed rows plus Gaussian noise (``noise`` x per-feature std), clipped into ``space``."""
    spread = np.asarray(seeds, np.float64).std(axis=0)
    scale = np.where(spread > 0, spread, space.span * 0.01) * noise
    picks = np.asarray(seeds, np.float64)[rng.integers(0, len(seeds), count)]
    return space.clip(picks + rng.normal(size=picks.shape) * scale)


def fidelity(surrogate: object, rows: np.ndarray, target_labels: np.ndarray) -> float:
    """Share of ``rows`` on which ``surrogate`` predicts the target's label."""
    return float(np.mean(surrogate.predict(rows) == target_labels))  # type: ignore[attr-defined]


def train_surrogate(rows: np.ndarray, labels: np.ndarray, *, trees: int, seed: int) -> object:
    """A random forest fitted to the answers (scikit-learn; any single class is fine)."""
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=trees, random_state=seed, n_jobs=1).fit(rows, labels)


def run_extraction(
    oracle: LabelOracle,
    *,
    seeds: np.ndarray,
    holdout: np.ndarray,
    space: FeatureSpace,
    options: ExtractionOptions | None = None,
    watch: AlertWatch | None = None,
    judge: LabelOracle | None = None,
) -> ExtractionResult:
    """Label ``holdout``, then query synthetic rows around ``seeds`` up to the budget, training at each checkpoint.

    ``judge`` labels the holdout (default: ``oracle`` itself). Measuring is the harness's work,
    not the attacker's: a judge that sends the holdout in one large request keeps the
    measurement from eating the attacker's rate-limit budget.

    A stop (budget, deadline, rate limit) ends the querying; the surrogate is then trained once
    more on everything answered, so the curve's last point is what the attacker walked away with.
    """
    options = options or ExtractionOptions()
    started = time.monotonic()
    before = watch.snapshot() if watch is not None else None
    rng = np.random.default_rng(options.seed)
    marks = sorted({c for c in options.checkpoints if 0 < c < options.queries} | {options.queries} - {0})
    asked: list[np.ndarray] = []
    answered: list[np.ndarray] = []
    curve: list[CurvePoint] = []
    truth = np.zeros(0, dtype=np.int64)
    try:
        truth = (judge or oracle).predict(holdout).labels
        for mark in marks:
            while (have := sum(len(a) for a in answered)) < mark:
                rows = synthetic_queries(seeds, space, min(options.step, mark - have), options.noise, rng)
                answered.append(oracle.predict(rows).labels)
                asked.append(rows)
            curve.append(_point(asked, answered, holdout, truth, options))
    except BudgetSpent:
        have = sum(len(a) for a in answered)
        if have and (not curve or curve[-1].queries < have):
            curve.append(_point(asked, answered, holdout, truth, options))
    alert = watch.fired(EXTRACTION_RULE, before, wait_seconds=options.alert_wait_seconds) if watch else None
    return ExtractionResult(
        curve=tuple(curve),
        chance_fidelity=float(np.bincount(truth).max() / len(truth)) if len(truth) else 0.0,
        queries=sum(len(a) for a in answered),
        requests=oracle.budget.requests,
        rate_limited=oracle.budget.rate_limited,
        stopped=oracle.budget.stopped,
        alert=alert or AlertCheck.NOT_CHECKED,
        seconds=time.monotonic() - started,
        options=options,
    )


def _point(asked: list[np.ndarray], answered: list[np.ndarray], holdout: np.ndarray, truth: np.ndarray,
           options: ExtractionOptions) -> CurvePoint:  # fmt: skip
    rows, labels = np.concatenate(asked), np.concatenate(answered)
    surrogate = train_surrogate(rows, labels, trees=options.trees, seed=options.seed)
    return CurvePoint(len(labels), fidelity(surrogate, holdout, truth))


@register(SUITE)
def extraction_suite(target: Target, options: SuiteOptions) -> SuiteResult:
    """The attacker's half of its held-out rows seed the queries; the rest (and the training rows) judge the copy."""
    data = attack_data(options, SUITE)
    sample = data.sample
    judged = [sample[len(sample) // 2 :]] + ([data.members.x] if data.holdout and data.members else [])
    budget = suite_budget(target, options, SUITE)
    holdout = np.concatenate(judged)[: max(50, budget.rows // 4)]  # measuring takes at most a quarter
    settings = ExtractionOptions(queries=max(0, budget.rows - len(holdout)), seed=options.seed)
    result = run_extraction(
        TargetOracle(target, budget), seeds=sample[: max(1, len(sample) // 2)], holdout=holdout, space=data.space,
        options=settings, watch=AlertWatch(target, target.tokens.audit),
        judge=TargetOracle(target, budget, rows_per_request=JUDGE_ROWS_PER_REQUEST),
    )  # fmt: skip
    finding = result.finding()
    status = CheckStatus.FAILED if finding else CheckStatus.PASSED
    if not result.curve:
        status = CheckStatus.NOT_CHECKED  # not one attack query answered: nothing was tried
    check = Check(PROBE, "the model cannot be copied through its answers", status, result.title())
    return SuiteResult(SUITE, [finding] if finding else [], result.metrics(), budget.spent, result.seconds,
                       {"extraction_fidelity": result.chart()}, [check])  # fmt: skip
