"""Membership inference: can the gateway's answers tell training rows from rows the model never saw?

ART's ``MembershipInferenceBlackBox`` learns, from the model's answers (probabilities when
the gateway returns them, else one-hot labels) and the true labels, to tell members (rows
of the registered training dataset) from non-members (held-out rows). Both sides are
balanced and split in two folds: each fold's attack model is trained on the other fold,
so every row is scored by an attack that never saw it. The scores give the attack's ROC
AUC (0.5 is chance) and its membership advantage, max(TPR - FPR) over thresholds (0 is
chance, 1 is a perfect oracle of membership).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlwarden.errors import InvalidInput
from mlwarden.redteam.art_loader import load_art
from mlwarden.redteam.attack_data import attack_data, suite_budget
from mlwarden.redteam.findings import Check, CheckStatus, Finding, FindingSeverity, SuiteResult
from mlwarden.redteam.oracle import Answers, BudgetSpent, LabelOracle, StopReason, TargetOracle, classes_of
from mlwarden.redteam.suites import SuiteOptions, register

if TYPE_CHECKING:
    from mlwarden.redteam.target import Target

SUITE = "membership"
PROBE = "membership.training-rows-exposed"
DEFAULT_ROWS_PER_SIDE = 200


@dataclass(frozen=True, slots=True)
class MembershipOptions:
    """How many rows per side (at most) and the severity thresholds."""

    rows_per_side: int = DEFAULT_ROWS_PER_SIDE
    seed: int = 0
    trees: int = 100
    high_auc: float = 0.75
    medium_auc: float = 0.62
    low_auc: float = 0.55


@dataclass(frozen=True, slots=True)
class MembershipResult:
    """The attack's scores on members and non-members, and what they amount to."""

    auc: float | None
    advantage: float | None
    members: int
    nonmembers: int
    queries: int
    probabilities: bool
    """Whether the gateway returned probabilities (the stronger signal) or only labels."""
    stopped: StopReason | None
    seconds: float
    options: MembershipOptions

    def finding(self) -> Finding | None:
        """The severity rule (see :func:`membership_severity`) applied to the AUC; None near chance."""
        severity = membership_severity(self.auc, self.options)
        if severity is None:
            return None
        return Finding(PROBE, SUITE, severity, self.title(), self.metrics(), _remedy(self))

    def title(self) -> str:
        """One line: the attack's AUC and advantage, on how many rows."""
        if self.auc is None:
            return "membership inference did not run: the budget ran out before the model answered"
        return (f"membership inference: AUC {self.auc:.3f}, advantage {self.advantage or 0:.3f} on "
                f"{self.members} training rows against {self.nonmembers} held-out rows")  # fmt: skip

    def metrics(self) -> dict[str, Any]:
        """The numbers for the report (and the finding's evidence)."""
        return {
            "auc": None if self.auc is None else round(self.auc, 4),
            "advantage": None if self.advantage is None else round(self.advantage, 4),
            "members": self.members,
            "nonmembers": self.nonmembers,
            "queries": self.queries,
            "answers": "probabilities" if self.probabilities else "labels",
            "stopped_by": self.stopped.value if self.stopped else None,
            "seconds": round(self.seconds, 2),
        }


def membership_severity(auc: float | None, options: MembershipOptions) -> FindingSeverity | None:
    """high: AUC >= ``high_auc``; medium: >= ``medium_auc``; low: >= ``low_auc``; None: near chance."""
    if auc is None or auc < options.low_auc:
        return None
    if auc >= options.high_auc:
        return FindingSeverity.HIGH
    return FindingSeverity.MEDIUM if auc >= options.medium_auc else FindingSeverity.LOW


def _remedy(result: MembershipResult) -> str:
    o = result.options
    rule = (f"Rule: high when the attack's AUC >= {o.high_auc}, medium >= {o.medium_auc}, low >= {o.low_auc} "
            "(0.5 is a coin toss).")  # fmt: skip
    advice = "the model answers its training rows differently (more confidently or more correctly) than new rows"
    fixes = "regularise it (shallower trees, larger leaves, stronger penalty), train with differential privacy"
    if result.probabilities:
        fixes += ", and return labels (or rounded probabilities) instead of full probabilities"
    return f"{rule} {advice}: {fixes}."


def advantage(labels: np.ndarray, scores: np.ndarray) -> float:
    """Membership advantage: the largest TPR - FPR over all thresholds of ``scores``."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    return float(np.max(tpr - fpr))


def _balanced(x: np.ndarray, y: np.ndarray, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    pick = np.sort(rng.choice(len(x), size=count, replace=False))
    return np.asarray(x, np.float64)[pick], np.asarray(y).astype(np.int64)[pick]


def run_membership(
    oracle: LabelOracle,
    *,
    members: tuple[np.ndarray, np.ndarray],
    nonmembers: tuple[np.ndarray, np.ndarray],
    options: MembershipOptions | None = None,
) -> MembershipResult:
    """Ask about ``rows_per_side`` members and as many non-members, then score them with ART's black-box attack."""
    options = options or MembershipOptions()
    started = time.monotonic()
    count = min(len(members[0]), len(nonmembers[0]), options.rows_per_side)
    if count < 4:
        raise InvalidInput(f"membership inference needs at least 4 rows on each side, got {count}")
    rng = np.random.default_rng(options.seed)
    (mx, my), (nx, ny) = _balanced(*members, count, rng), _balanced(*nonmembers, count, rng)
    spent = oracle.budget.spent
    try:
        answers = oracle.predict(np.concatenate([mx, nx]))
    except BudgetSpent:
        return MembershipResult(None, None, count, count, oracle.budget.spent - spent, False, oracle.budget.stopped,
                                time.monotonic() - started, options)  # fmt: skip
    scores = _scores(answers, np.concatenate([my, ny]), mx.shape[1], options)
    truth = np.concatenate([np.ones(count), np.zeros(count)])
    from sklearn.metrics import roc_auc_score

    return MembershipResult(float(roc_auc_score(truth, scores)), advantage(truth, scores), count, count,
                            oracle.budget.spent - spent, answers.probabilities is not None, None,
                            time.monotonic() - started, options)  # fmt: skip


def _scores(answers: Answers, y: np.ndarray, features: int, options: MembershipOptions) -> np.ndarray:
    """Membership scores of the ``2 * count`` rows (members first), each from the attack trained on the other fold."""
    load_art()
    from art.attacks.inference.membership_inference import MembershipInferenceBlackBox
    from art.estimators.classification import BlackBoxClassifier

    classes = max(classes_of(answers), int(y.max()) + 1)
    predictions = answers.scores(classes).astype(np.float32)
    count = len(y) // 2
    target = BlackBoxClassifier(_no_more_queries, input_shape=(features,), nb_classes=classes)
    fold = np.arange(count) % 2  # members and non-members alike: rows i and count + i share a fold
    fold = np.concatenate([fold, fold])
    member = np.concatenate([np.ones(count, bool), np.zeros(count, bool)])
    scores = np.zeros(2 * count)
    for k in (0, 1):
        train, test = fold != k, fold == k
        attack = MembershipInferenceBlackBox(target, input_type="prediction", attack_model_type="rf")
        attack.attack_model.set_params(n_estimators=options.trees, random_state=options.seed)  # ART's forest, seeded
        attack.fit(y=y[train & member], pred=predictions[train & member],
                   test_y=y[train & ~member], test_pred=predictions[train & ~member])  # fmt: skip
        inferred = attack.infer(None, y[test], pred=predictions[test], probabilities=True)
        scores[test] = np.asarray(inferred, np.float64).reshape(len(inferred), -1)[:, -1]
    return scores


def _no_more_queries(rows: np.ndarray) -> np.ndarray:
    """The attack gets the gateway's answers up front; a call here would be an extra, uncounted query."""
    raise InvalidInput("membership inference asked the model again; it must use the answers already fetched")


@register(SUITE)
def membership_suite(target: Target, options: SuiteOptions) -> SuiteResult:
    """Members: the training rows with their labels; non-members: the held-out rows with theirs."""
    data = attack_data(options, SUITE)
    if data.members is None or data.holdout is None or data.members.y is None or data.holdout.y is None:
        raise InvalidInput("the membership suite needs the training set and held-out rows, both with labels")
    budget = suite_budget(target, options, SUITE)
    settings = MembershipOptions(rows_per_side=min(DEFAULT_ROWS_PER_SIDE, budget.rows // 2),
                                 seed=options.seed)  # fmt: skip
    result = run_membership(TargetOracle(target, budget), members=(data.members.x, data.members.y),
                            nonmembers=(data.holdout.x, data.holdout.y), options=settings)  # fmt: skip
    finding = result.finding()
    status = CheckStatus.FAILED if finding else CheckStatus.PASSED
    if result.auc is None:
        status = CheckStatus.NOT_CHECKED
    check = Check(PROBE, "answers do not reveal which rows the model was trained on", status, result.title())
    return SuiteResult(SUITE, [finding] if finding else [], result.metrics(), budget.spent, result.seconds,
                       checks=[check])  # fmt: skip
