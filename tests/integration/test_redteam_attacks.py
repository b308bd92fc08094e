"""The attack suites against a real gateway (uvicorn on loopback): extraction, evasion, membership inference."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from mlwarden.redteam.alert_check import AlertCheck, AlertWatch
from mlwarden.redteam.attack_finding import FindingSeverity
from mlwarden.redteam.evasion import EvasionOptions, run_evasion
from mlwarden.redteam.extraction import ExtractionOptions, ExtractionResult, run_extraction
from mlwarden.redteam.feature_space import FeatureSpace
from mlwarden.redteam.membership import run_membership
from mlwarden.redteam.oracle import AttackTargetError, GatewayOracle, QueryBudget, StopReason
from tests.integration.redteam_gateway import AttackZoo, build_zoo, serving

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> AttackZoo:
    return build_zoo(tmp_path_factory.mktemp("redteam"))


@pytest.fixture(scope="module")
def open_gateway(zoo: AttackZoo) -> Iterator[str]:
    """The gateway with its rate limit off."""
    with serving(zoo.options, rate_limit=0) as url:
        yield url


def _oracle(url: str, zoo: AttackZoo, *, model: str = "bc", rows: int = 50_000, seconds: float = 60,
            per_request: int = 100) -> GatewayOracle:  # fmt: skip
    return GatewayOracle(url=url, model=model, token=zoo.token, budget=QueryBudget.of(rows, seconds),
                         rows_per_request=per_request)  # fmt: skip


def _extract(url: str, zoo: AttackZoo, *, per_request: int, seconds: float) -> ExtractionResult:
    """The attacker holds half the held-out rows; fidelity is judged on the other half and the training rows."""
    seeds, holdout = zoo.eval_x[:70], np.concatenate([zoo.eval_x[70:], zoo.train_x])
    with _oracle(url, zoo, per_request=per_request, seconds=seconds) as oracle, \
            _oracle(url, zoo, per_request=1000) as judge:  # fmt: skip
        return run_extraction(oracle, seeds=seeds, holdout=holdout, space=FeatureSpace.of_rows(zoo.train_x),
                              judge=judge, watch=AlertWatch(url=url, token=zoo.token),
                              options=ExtractionOptions(step=per_request))  # fmt: skip


@pytest.fixture(scope="module")
def unlimited_extraction(zoo: AttackZoo, open_gateway: str) -> ExtractionResult:
    return _extract(open_gateway, zoo, per_request=100, seconds=60)


def _labels(url: str, zoo: AttackZoo, rows: np.ndarray, model: str = "bc") -> list[int]:
    response = httpx.post(f"{url}/v1/models/{model}/predict", json={"inputs": rows.tolist()},
                          headers={"Authorization": f"Bearer {zoo.token}"}, timeout=30)  # fmt: skip
    assert response.status_code == 200, response.text
    return [int(p["label"]) for p in response.json()["predictions"]]


def test_extraction_copies_the_demo_model_when_nothing_limits_it(unlimited_extraction: ExtractionResult) -> None:
    """Rate limit off: 2,000 answered queries give a surrogate agreeing with the model on >= 95% of held-out rows."""
    result = unlimited_extraction
    assert result.queries == 2000
    assert result.stopped is None
    assert result.rate_limited == 0
    assert [p.queries for p in result.curve] == [100, 250, 500, 1000, 2000]
    assert result.fidelity >= 0.95
    assert result.fidelity > result.chance_fidelity + 0.25  # far better than always answering the common class
    assert result.alert is AlertCheck.NOT_CHECKED  # this gateway has no alerts API (404): never guessed as fired
    finding = result.finding()
    assert finding.severity is FindingSeverity.MEDIUM  # a faithful copy, detection not verifiable
    assert "audit:read" in finding.remedy


def test_a_tight_rate_limit_stops_extraction_early(zoo: AttackZoo, unlimited_extraction: ExtractionResult) -> None:
    """0.2 requests/s after a burst of 3: 429s are seen, the attack stops on them with fewer rows and a worse copy."""
    with serving(zoo.options, rate_limit=0.2, rate_burst=3) as url:
        result = _extract(url, zoo, per_request=10, seconds=6)
    assert result.rate_limited >= 1
    assert result.stopped is StopReason.RATE_LIMIT
    assert 0 < result.queries <= 40  # the burst less the judge's request, and perhaps one refill
    assert result.fidelity < unlimited_extraction.fidelity
    assert result.finding().evidence["stopped_by"] == "rate_limit"


def test_evasion_finds_examples_whose_answer_really_flips_at_the_gateway(zoo: AttackZoo, open_gateway: str) -> None:
    """HopSkipJump and Boundary each flip rows; asked afresh, the gateway labels every one differently."""
    space = FeatureSpace.of_rows(zoo.train_x)
    with _oracle(open_gateway, zoo) as oracle:
        result = run_evasion(oracle, rows=zoo.eval_x, space=space, options=EvasionOptions(samples=3))
    assert [o.attack for o in result.outcomes] == ["hopskipjump", "boundary"]
    for outcome in result.outcomes:
        assert outcome.attempted == 3, outcome
        assert outcome.succeeded >= 2, outcome
        before = _labels(open_gateway, zoo, outcome.originals)
        after = _labels(open_gateway, zoo, outcome.adversarials)
        assert all(b != a for b, a in zip(before, after, strict=True))
        assert np.all(outcome.adversarials >= space.lows - 1e-6)
        assert np.all(outcome.adversarials <= space.highs + 1e-6)
        assert all(0 < p < 0.5 for p in outcome.perturbations)
        assert outcome.queries > 100  # decision-based: many label queries per row
    assert sum(b["count"] for b in result.histogram()) == sum(o.succeeded for o in result.outcomes)


def test_membership_inference_separates_an_overfit_models_members(zoo: AttackZoo, open_gateway: str) -> None:
    """An overfit forest (memorised noisy labels) gets a high AUC; a regularised model on the same data stays low."""
    aucs = {}
    for model in ("overfit", "regular"):
        with _oracle(open_gateway, zoo, model=model) as oracle:
            result = run_membership(oracle, members=(zoo.train_x, zoo.noisy_y), nonmembers=(zoo.eval_x, zoo.eval_y))
        assert result.members == result.nonmembers == len(zoo.eval_x)
        assert result.queries == 2 * len(zoo.eval_x)
        assert result.probabilities
        aucs[model] = (result.auc, result.advantage, result.finding().severity)
    (over_auc, over_adv, over_sev), (reg_auc, reg_adv, _) = aucs["overfit"], aucs["regular"]
    assert over_auc is not None
    assert reg_auc is not None
    assert over_adv is not None
    assert reg_adv is not None
    assert over_auc >= 0.75, aucs
    assert over_auc > reg_auc + 0.2, aucs
    assert over_adv > reg_adv
    assert over_sev is FindingSeverity.HIGH


def test_a_token_the_gateway_refuses_is_a_target_error(zoo: AttackZoo, open_gateway: str) -> None:
    """The suites cannot attack a model they may not query: a 401 is an error naming the status, not a finding."""
    oracle = GatewayOracle(
        url=open_gateway,
        model="bc",
        token="mlw_bogus_secret",  # noqa: S106 - a made-up token, refused
        budget=QueryBudget.of(100, 10),
    )
    with oracle, pytest.raises(AttackTargetError, match="401"):
        oracle.predict(zoo.eval_x[:2])
    assert oracle.budget.spent == 0


def test_an_unreachable_gateway_is_a_target_error(tmp_path: Path) -> None:
    """Nothing listens: a one-line error, no traceback of httpx's."""
    oracle = GatewayOracle(url="http://127.0.0.1:9", model="bc", token="t", budget=QueryBudget.of(10, 5), timeout=2)  # noqa: S106
    with oracle, pytest.raises(AttackTargetError, match="cannot reach the gateway"):
        oracle.predict(np.zeros((1, 3)))
