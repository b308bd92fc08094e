"""The target: only its own URL, the query budget, tokens never shown, predict's refusals typed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from mlwarden.errors import InvalidInput
from mlwarden.redteam.suites import FeatureRange, LabelledRows, SuiteOptions, select
from mlwarden.redteam.target import MAX_RETRIES, BudgetExhausted, PredictRefused, RateLimitedByTarget, Target, Tokens

SECRET = "mlw_00000000000000aa_" + "q" * 43


@dataclass
class _Answer:
    status_code: int
    content: bytes
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})


@dataclass
class FakeClient:
    """Our HttpClient interface, answering from a list and remembering what was asked."""

    answers: list[_Answer]
    asked: list[tuple[str, str, Mapping[str, str] | None]] = field(default_factory=list)

    def request(self, method: str, url: str, *, content: bytes | None = None, headers: Mapping[str, str] | None = None,
                follow_redirects: bool = False, extensions: Mapping[str, Any] | None = None) -> _Answer:  # fmt: skip
        assert follow_redirects is False
        self.asked.append((method, url, headers))
        return self.answers.pop(0)

    def close(self) -> None:
        pass


def _target(*answers: _Answer, budget: int = 10) -> tuple[Target, FakeClient]:
    client = FakeClient(list(answers))
    return Target(base_url="http://gw.test:8000/", model="bc", tokens=Tokens(SECRET), budget=budget,
                  client=client), client  # fmt: skip


def test_predict_spends_the_budget_per_row_and_refuses_past_it_without_asking() -> None:
    """Three rows cost three queries; a request that would pass the budget is never sent."""
    ok = _Answer(200, b'{"predictions": [{"label": 1}, {"label": 0}, {"label": 1}], "version": 2, "sha256": "ab"}')
    target, client = _target(ok, budget=4)
    assert target.labels([[1], [2], [3]]) == [1, 0, 1]
    assert (target.queries, target.remaining, target.served) == (3, 1, {"version": 2, "sha256": "ab"})
    with pytest.raises(BudgetExhausted):
        target.predict([[1], [2]])
    assert len(client.asked) == 1
    assert client.asked[0][:2] == ("POST", "http://gw.test:8000/v1/models/bc/predict")


def test_predict_raises_typed_refusals() -> None:
    """429 is the rate limit holding; any other non-200 is a refusal carrying the reply."""
    problem = {"content-type": "application/problem+json"}
    target, _ = _target(_Answer(429, b'{"title": "rate limited"}', problem), _Answer(403, b'{"title": "no"}', problem))
    with pytest.raises(RateLimitedByTarget):
        target.predict([[1]])
    with pytest.raises(PredictRefused) as refused:
        target.predict([[1]])
    assert refused.value.reply.status == 403
    assert refused.value.reply.is_problem


def test_patient_requests_wait_out_the_rate_limit_within_their_patience() -> None:
    """A 429 with Retry-After is retried while the patience lasts; then the 429 is the answer."""
    limited = _Answer(429, b"{}", {"content-type": "application/problem+json", "retry-after": "0"})
    target, client = _target(limited, _Answer(200, b"{}"), limited, limited)
    assert target.request("GET", "/healthz", patient=True).status == 200
    assert len(client.asked) == 2
    assert target.request("GET", "/healthz").status == 429  # impatient: the first answer stands
    client.answers = [limited] * 20
    assert target.request("GET", "/healthz", patient=True).status == 429  # Retry-After 0 forever: bounded
    assert len(client.asked) == 3 + MAX_RETRIES
    target.patience, client.answers = 0.5, [_Answer(429, b"{}", {"retry-after": "1"})]
    assert target.request("GET", "/healthz", patient=True).status == 429  # a wait beyond the patience: no retry


@pytest.mark.parametrize("path", ["//evil.test/x", "http://evil.test/x", "v1/models", "/x://y"])
def test_requests_never_leave_the_target(path: str) -> None:
    """A path that could point elsewhere is refused before anything is sent."""
    target, client = _target()
    with pytest.raises(InvalidInput):
        target.request("GET", path)
    assert client.asked == []


@pytest.mark.parametrize("url", ["ftp://gw", "gw:8000", "http://", "http://gw/?q=1", "file:///etc/passwd"])
def test_a_target_url_must_be_plain_http(url: str) -> None:
    with pytest.raises(InvalidInput):
        Target(base_url=url, model="m", tokens=Tokens(SECRET), client=FakeClient([]))


def test_tokens_never_appear_in_a_repr() -> None:
    """Tokens and the target show which tokens were given, never their values."""
    tokens = Tokens(SECRET, audit=SECRET[::-1])
    target = Target(base_url="http://gw", model="m", tokens=tokens, client=FakeClient([]))
    for text in (repr(tokens), str(tokens), repr(target)):
        assert SECRET not in text
        assert SECRET[::-1] not in text
    assert "audit" in repr(tokens)
    assert tokens.secrets() == [SECRET, SECRET[::-1]]


def test_sample_row_prefers_reference_rows_then_mid_range() -> None:
    features = (FeatureRange("a", minimum=0.0, maximum=10.0), FeatureRange("b"))
    assert SuiteOptions(features=features).sample_row() == {"a": 5.0, "b": 0.0}
    reference = LabelledRows([{"a": 1.0, "b": 2.0}], [0])
    assert SuiteOptions(features=features, reference=reference).sample_row() == {"a": 1.0, "b": 2.0}
    assert SuiteOptions().sample_row() is None


def test_suite_selection_refuses_unknown_names() -> None:
    assert select("input,access,input") == ["input", "access"]
    with pytest.raises(InvalidInput, match="unknown suite"):
        select("access,vibes")
    assert select(None)[:4] == ["access", "input", "poisoning", "governance"]


def test_a_suite_whose_dependency_is_missing_runs_as_not_checked_and_an_absent_one_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A suite module that is here but cannot import reports why; a module that is not here is no suite."""
    from mlwarden.redteam import suites
    from mlwarden.redteam.run import run_suites

    monkeypatch.setattr(suites, "DEFAULT_SUITES", ("ghost", "absent"))
    monkeypatch.setattr(suites, "_MODULES", ("tests.unit.redteam.ghost_suite", "tests.unit.redteam.absent_suite"))
    monkeypatch.setattr(suites, "UNAVAILABLE", {})
    monkeypatch.setattr(suites, "SUITES", {})
    import mlwarden.redteam.run as run_module

    monkeypatch.setattr(run_module, "UNAVAILABLE", suites.UNAVAILABLE)
    assert suites.select(None) == ["ghost"]
    with pytest.raises(InvalidInput, match="unknown suite"):
        suites.select("absent")
    target = Target(base_url="http://gw", model="m", tokens=Tokens(SECRET), client=FakeClient([]))
    report = run_suites(target, SuiteOptions(), ["ghost"])
    check = report.suites[0].checks[0]
    assert check.status.value == "not_checked"
    assert "mlwarden_redteam_missing_dependency" in check.detail
    assert report.passed
