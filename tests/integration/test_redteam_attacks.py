"""The attack suites against a real gateway (uvicorn on loopback): extraction, evasion, membership inference."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from mlwarden.config import Settings
from mlwarden.redteam.alert_check import AlertCheck, AlertWatch
from mlwarden.redteam.evasion import EvasionOptions, run_evasion
from mlwarden.redteam.extraction import JUDGE_ROWS_PER_REQUEST, ExtractionOptions, ExtractionResult, run_extraction
from mlwarden.redteam.feature_space import FeatureSpace
from mlwarden.redteam.findings import CheckStatus, FindingSeverity
from mlwarden.redteam.membership import run_membership
from mlwarden.redteam.oracle import QueryBudget, StopReason, TargetOracle
from mlwarden.redteam.suites import FeatureRange, LabelledRows, SuiteOptions, load_suites
from mlwarden.redteam.target import PredictRefused, Target, Tokens
from tests.integration.redteam_gateway import AttackZoo, build_zoo, free_port, serving

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]  # the ART attacks against a served model


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> AttackZoo:
    return build_zoo(tmp_path_factory.mktemp("redteam"))


@pytest.fixture(scope="module")
def open_gateway(zoo: AttackZoo) -> Iterator[str]:
    """The gateway with its rate limit off."""
    with serving(zoo.options, rate_limit=0) as url:
        yield url


def _target(url: str, zoo: AttackZoo, *, model: str = "bc", token: str | None = None) -> Target:
    return Target(base_url=url, model=model, tokens=Tokens(inference=token or zoo.token), budget=100_000)


def _oracle(target: Target, *, rows: int = 50_000, seconds: float = 60, per_request: int = 100) -> TargetOracle:
    return TargetOracle(target, QueryBudget.of(rows, seconds), rows_per_request=per_request)


def _extract(url: str, zoo: AttackZoo, *, per_request: int, seconds: float) -> ExtractionResult:
    """The attacker holds half the held-out rows; fidelity is judged on the other half and the training rows."""
    seeds, holdout = zoo.eval_x[:70], np.concatenate([zoo.eval_x[70:], zoo.train_x])
    target = _target(url, zoo)
    try:
        return run_extraction(_oracle(target, per_request=per_request, seconds=seconds), seeds=seeds,
                              holdout=holdout, space=FeatureSpace.of_rows(zoo.train_x),
                              judge=_oracle(target, per_request=JUDGE_ROWS_PER_REQUEST),
                              watch=AlertWatch(target, zoo.token),
                              options=ExtractionOptions(step=per_request))  # fmt: skip
    finally:
        target.close()


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
    assert finding is not None
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
    assert result.metrics()["stopped_by"] == "rate_limit"


def test_evasion_finds_examples_whose_answer_really_flips_at_the_gateway(zoo: AttackZoo, open_gateway: str) -> None:
    """HopSkipJump and Boundary each flip rows; asked afresh, the gateway labels every one differently."""
    space = FeatureSpace.of_rows(zoo.train_x)
    target = _target(open_gateway, zoo)
    result = run_evasion(_oracle(target), rows=zoo.eval_x, space=space, options=EvasionOptions(samples=3))
    target.close()
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
        target = _target(open_gateway, zoo, model=model)
        result = run_membership(
            _oracle(target), members=(zoo.train_x, zoo.noisy_y), nonmembers=(zoo.eval_x, zoo.eval_y)
        )
        target.close()
        assert result.members == result.nonmembers == len(zoo.eval_x)
        assert result.queries == 2 * len(zoo.eval_x)
        assert result.probabilities
        finding = result.finding()
        aucs[model] = (result.auc, result.advantage, finding.severity if finding else None)
    (over_auc, over_adv, over_sev), (reg_auc, reg_adv, _) = aucs["overfit"], aucs["regular"]
    assert over_auc is not None
    assert reg_auc is not None
    assert over_adv is not None
    assert reg_adv is not None
    assert over_auc >= 0.75, aucs
    assert over_auc > reg_auc + 0.2, aucs
    assert over_adv > reg_adv
    assert over_sev is FindingSeverity.HIGH


def test_a_token_the_gateway_refuses_is_the_targets_error(zoo: AttackZoo, open_gateway: str) -> None:
    """The suites cannot attack a model they may not query: a 401 is PredictRefused (not checked), not a finding."""
    target = _target(open_gateway, zoo, token="mlw_bogus_secret")  # noqa: S106 - a made-up token, refused
    oracle = _oracle(target)
    with pytest.raises(PredictRefused) as refused:
        oracle.predict(zoo.eval_x[:2])
    target.close()
    assert refused.value.reply.status == 401
    assert oracle.budget.spent == 0


def _rows(x: np.ndarray, y: np.ndarray, names: list[str]) -> LabelledRows:
    return LabelledRows([dict(zip(names, map(float, row), strict=True)) for row in x], [int(v) for v in y])


def test_the_three_suites_run_through_the_registry_within_time_at_the_default_rate_limit(zoo: AttackZoo) -> None:
    """Default settings and budget: every suite reports its probes, metrics and charts; no high finding; < 90 s."""
    names = [f"f{i}" for i in range(zoo.train_x.shape[1])]
    options = SuiteOptions(features=tuple(FeatureRange(n) for n in names),
                           reference=_rows(zoo.train_x, zoo.train_y, names),
                           holdout=_rows(zoo.eval_x, zoo.eval_y, names))  # fmt: skip
    defaults = Settings()
    with serving(zoo.options, rate_limit=defaults.rate_limit, rate_burst=defaults.rate_burst) as url:
        target = _target(url, zoo)
        started = time.monotonic()
        results = {name: load_suites()[name](target, options) for name in ("extraction", "evasion", "membership")}
        seconds = time.monotonic() - started
        target.close()
    assert seconds < 90
    assert [c.id for c in results["extraction"].checks] == ["extraction.model-copied"]
    assert [c.id for c in results["evasion"].checks] == ["evasion.hopskipjump", "evasion.boundary"]
    assert [c.id for c in results["membership"].checks] == ["membership.training-rows-exposed"]
    curve = results["extraction"].charts["extraction_fidelity"]
    assert curve[-1]["queries"] == results["extraction"].metrics["queries"] > 0
    assert sum(p["count"] for p in results["evasion"].charts["evasion_perturbation"]) == sum(
        results["evasion"].metrics[a]["succeeded"] for a in ("hopskipjump", "boundary")
    )
    assert 0.3 < results["membership"].metrics["auc"] < 0.7  # the demo model does not memorise its rows
    for result in results.values():
        assert 0 < result.queries <= options.budget
        assert all(f.severity is not FindingSeverity.HIGH for f in result.findings), result.findings
        assert {f.id for f in result.findings} <= {c.id for c in result.checks if c.status is CheckStatus.FAILED}


def test_a_prediction_of_more_than_255_rows_under_serve_is_answered(tmp_path: Path) -> None:
    """Found by the extraction suite: under `mlwarden serve` (ledger writer) 256 rows in one request get a 500."""
    zoo = build_zoo(tmp_path)
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "mlwarden.cli",
        "--home",
        str(zoo.options.paths.home),
        "serve",
        "--port",
        str(port),
    ]
    with (tmp_path / "serve.err").open("wb") as err:
        proc = subprocess.Popen(command, env={**os.environ, "MLWARDEN_RATE_LIMIT": "0"}, stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"  # noqa: PT018
                time.sleep(0.2)  # bounded by the deadline above
        rows = np.resize(zoo.eval_x, (256, zoo.eval_x.shape[1]))
        response = httpx.post(f"http://127.0.0.1:{port}/v1/models/bc/predict", json={"inputs": rows.tolist()},
                              headers={"Authorization": f"Bearer {zoo.token}"}, timeout=30)  # fmt: skip
        assert response.status_code == 200, response.status_code
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
