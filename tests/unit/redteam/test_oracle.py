"""The label oracle: parsing the gateway's answers, the query budget, 429s waited out or ending the attack."""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import pytest

from mlwarden.errors import InvalidInput
from mlwarden.redteam.oracle import (
    Answers,
    BudgetSpent,
    QueryBudget,
    StopReason,
    TargetOracle,
    answers_of,
    parse_prediction,
    retry_after,
)
from mlwarden.redteam.target import PredictRefused, Target, Tokens
from tests.unit.redteam.fake_gateway import FakeResponse, ScriptedClient


def test_a_classifier_answer_gives_its_label_and_probabilities() -> None:
    """{"label": 1, "probabilities": [...]} -> (1, probabilities); probabilities alone -> their argmax."""
    assert parse_prediction({"label": 1, "probabilities": [0.2, 0.8]}) == (1, [0.2, 0.8])
    assert parse_prediction({"probabilities": [0.7, 0.1, 0.2]}) == (0, [0.7, 0.1, 0.2])
    assert parse_prediction({"label": 2}) == (2, None)


@pytest.mark.parametrize("answer", [{"label": "cat"}, {"label": -1}, {"label": True}, {"score": 0.3}, "x"])
def test_an_answer_without_an_integer_class_is_refused(answer: object) -> None:
    """Strings, negative labels, booleans and bare scores are not classes 0..k-1: a one-line InvalidInput."""
    with pytest.raises(InvalidInput, match="integer labels"):
        parse_prediction(answer)


def test_answers_keep_probabilities_only_when_every_row_has_them() -> None:
    """Mixed answers fall back to labels; one_hot and scores agree with the labels."""
    full = answers_of([{"label": 1, "probabilities": [0.1, 0.9]}, {"label": 0, "probabilities": [0.6, 0.4]}])
    assert full.probabilities is not None
    assert full.scores(2).tolist() == [[0.1, 0.9], [0.6, 0.4]]
    mixed = answers_of([{"label": 1, "probabilities": [0.1, 0.9]}, {"label": 0}])
    assert mixed.probabilities is None
    assert mixed.scores(3).tolist() == [[0, 1, 0], [1, 0, 0]]


def test_the_budget_refuses_rows_past_it_and_calls_past_the_deadline() -> None:
    """check() raises BudgetSpent with the reason, and records it as the reason the attack stopped."""
    now = [0.0]
    budget = QueryBudget(rows=10, deadline=5.0, clock=lambda: now[0])
    budget.check(10)
    with pytest.raises(BudgetSpent) as spent:
        budget.check(11)
    assert spent.value.reason is StopReason.BUDGET
    now[0] = 5.0
    with pytest.raises(BudgetSpent) as late:
        budget.check(1)
    assert late.value.reason is StopReason.TIME
    assert budget.stopped is StopReason.TIME


def _predict_route(statuses: list[tuple[int, str]]) -> ScriptedClient:
    """Answers predicts with the scripted (status, Retry-After) in turn, then 200s labelling each row 1."""

    def route(method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> FakeResponse:
        assert url.endswith("/v1/models/m/predict")
        if statuses:
            status, wait = statuses.pop(0)
            return FakeResponse(status, {"title": "rate-limited"}, {"Retry-After": wait})
        rows = json.loads(body or b"{}")["inputs"]
        return FakeResponse(200, {"predictions": [{"label": 1, "probabilities": [0.0, 1.0]} for _ in rows]})

    return ScriptedClient(route)


def _target(client: ScriptedClient, budget: int = 1000) -> Target:
    return Target(base_url="http://gw.test", model="m", tokens=Tokens(inference="t"), budget=budget, client=client)


def test_rows_go_in_requests_of_the_chosen_size_and_are_charged_as_answered() -> None:
    """25 rows at 10 per request: 3 requests, 25 rows spent, one answer per row."""
    client = _predict_route([])
    oracle = TargetOracle(_target(client), QueryBudget.of(100, 30), rows_per_request=10)
    answers = oracle.predict(np.zeros((25, 3)))
    assert isinstance(answers, Answers)
    assert answers.labels.tolist() == [1] * 25
    assert len(client.sent) == 3
    assert (oracle.budget.spent, oracle.budget.requests) == (25, 3)


def test_a_429_is_waited_out_when_the_deadline_allows() -> None:
    """Retry-After: 0 -> counted, then asked again and answered."""
    oracle = TargetOracle(_target(_predict_route([(429, "0")])), QueryBudget.of(100, 30))
    assert oracle.predict(np.zeros((2, 3))).labels.tolist() == [1, 1]
    assert oracle.budget.rate_limited == 1
    assert oracle.budget.stopped is None


def test_a_429_longer_than_the_deadline_stops_the_attack_as_rate_limited() -> None:
    """Retry-After: 100 with 30 s left: BudgetSpent(rate_limit), nothing charged."""
    oracle = TargetOracle(_target(_predict_route([(429, "100")])), QueryBudget.of(100, 30))
    with pytest.raises(BudgetSpent) as spent:
        oracle.predict(np.zeros((2, 3)))
    assert spent.value.reason is StopReason.RATE_LIMIT
    assert (oracle.budget.spent, oracle.budget.rate_limited) == (0, 1)


def test_the_runs_own_budget_ends_the_attack_too() -> None:
    """A target with 5 queries left: asking for 10 stops with reason budget before any request."""
    client = _predict_route([])
    oracle = TargetOracle(_target(client, budget=5), QueryBudget.of(100, 30))
    with pytest.raises(BudgetSpent) as spent:
        oracle.predict(np.zeros((10, 3)))
    assert spent.value.reason is StopReason.BUDGET
    assert client.sent == []


def test_any_other_refusal_is_the_targets_error() -> None:
    """A 403 is PredictRefused (the run reports the suite as not checked), never a quiet empty answer."""
    oracle = TargetOracle(_target(_predict_route([(403, "")])), QueryBudget.of(100, 30))
    with pytest.raises(PredictRefused):
        oracle.predict(np.zeros((1, 3)))


@pytest.mark.parametrize(("value", "seconds"), [("3", 3.0), (None, 1.0), ("soon", 1.0), ("-2", 1.0), ("inf", 1.0)])
def test_retry_after_reads_seconds_and_defaults_to_one(value: str | None, seconds: float) -> None:
    """Only a finite, non-negative number of seconds is taken as given."""
    assert retry_after(value) == seconds
