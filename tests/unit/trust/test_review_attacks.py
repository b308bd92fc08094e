"""Review of issue 9: attacks by a database writer and a local operator, and honest workflows.

Each test runs against a real SQLite workspace behind a real gateway (``env``) or the CLI
in-process (``cli``), and shows the attack refused and reported, or an honest workflow
left unflagged.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from mlwarden.config import Settings
from mlwarden.identity.tokens import parse_token, revoke_token
from mlwarden.registry import governance
from mlwarden.registry.governance import promote, set_stage
from mlwarden.registry.models import register_model
from mlwarden.samples import SampleModel
from mlwarden.store.schema import ledger_entries, ledger_refs, privacy_rows
from mlwarden.trust.follower import follower
from mlwarden.trust.projection import TrustedState
from tests.support.cli import Cli
from tests.unit.api.conftest import Env, api_sample, env, make_env

__all__ = ["api_sample", "env"]  # the gateway fixtures, shared with tests/unit/api


def _set(env: Env, table: Any, where: Any, **values: Any) -> None:
    with env.ws.engine.begin() as conn:
        conn.execute(update(table).where(where).values(**values))


def _predict(env: Env) -> tuple[str, int]:
    response = env.client.post(
        "/v1/models/bc/predict", json={"inputs": env.rows(1)}, headers=env.headers(env.tokens["inference:read"])
    )
    assert response.status_code == 200, response.text
    return str(response.json()["decision_ids"][0]), int(response.json()["ledger_index"])


def _feedback(env: Env, decision: str) -> dict[str, Any]:
    response = env.client.post(
        "/v1/feedback",
        json={"decision_id": decision, "kind": "incorrect", "expected": 1},
        headers=env.headers(env.tokens["feedback:write"]),
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_honest_feedback_is_not_flagged_by_verify(env: Env, cli: Cli) -> None:
    """A feedback id is a reference too: its entry must record it, or every honest workspace looks tampered."""
    decision, _ = _predict(env)
    _feedback(env, decision)
    result = cli("ledger", "verify")
    assert result.code == 0, result.err


def test_decision_ref_pointed_at_its_feedback_is_named_by_verify(env: Env, cli: Cli) -> None:
    """The feedback entry mentions the decision id; re-pointing the reference there must still be found."""
    decision, _ = _predict(env)
    _feedback(env, decision)
    with env.ws.engine.connect() as conn:
        feedback_at = conn.execute(select(ledger_entries.c.idx).where(ledger_entries.c.kind == "feedback")).scalar_one()
    _set(env, privacy_rows, privacy_rows.c.decision_id == decision, ledger_index=feedback_at)
    response = env.client.get(f"/v1/decisions/{decision}", headers=env.headers(env.tokens["audit:read"]))
    assert response.status_code == 503, response.text
    result = cli("ledger", "verify", "--json").json_lines()[0]
    assert ("privacy_rows", decision) in {(r["table"], r["row"]) for r in result["rows"]}, result["rows"]


def test_feedback_ref_pointed_at_its_decision_is_named_by_verify(env: Env, cli: Cli) -> None:
    """A feedback id is indexed in ``ledger_refs``: re-pointed at the prediction it names, verify still finds it."""
    decision, prediction_at = _predict(env)
    feedback_id = _feedback(env, decision)["feedback_id"]
    _set(env, ledger_refs, ledger_refs.c.ref == feedback_id, idx=prediction_at)
    result = cli("ledger", "verify", "--json").json_lines()[0]
    assert ("ledger_refs", feedback_id) in {(r["table"], r["row"]) for r in result["rows"]}, result["rows"]


class _Stale:
    """A follower whose state was read before another writer committed (the race window)."""

    def __init__(self, state: TrustedState) -> None:
        self._state = state

    def refresh(self) -> TrustedState:
        return self._state


def test_concurrent_promotions_leave_one_production_row(env: Env, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two promotions that both read the state before either committed: the rows must still agree."""
    register_model(env.ws, name="race", path=env.sample.onnx, card_path=env.sample.card, principal="alice")
    register_model(env.ws, name="race", path=env.sample.skops, card_path=env.sample.card, principal="alice")
    before = follower(env.ws).refresh()
    monkeypatch.setattr(governance, "follower", lambda ws: _Stale(before))
    gates = {"passed": True, "gate_run": 0, "gates": ["approvals"]}
    set_stage(env.ws, "race", 1, "production", "reviewer", gates=gates)
    set_stage(env.ws, "race", 2, "production", "reviewer", gates=gates)
    monkeypatch.undo()
    response = env.client.post(
        "/v1/models/race/predict", json={"inputs": env.rows(1)}, headers=env.headers(env.tokens["inference:read"])
    )
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2
    check = cli("model", "check")
    assert check.code == 0, (check.out, check.err)


@pytest.fixture
def cached_env(tmp_path: Path, api_sample: SampleModel) -> Iterator[Env]:
    """A gateway with the default caches: auth 1 s, models 1 s, the state refreshed every 0.5 s."""
    yield from make_env(tmp_path / "ws", api_sample, Settings(database_url=None, rate_limit=0, gc_freeze=False))


def test_archiving_the_served_version_is_no_tamper_alarm(cached_env: Env) -> None:
    """Between two refreshes the state still says production while the row was honestly archived."""
    env = cached_env
    _predict(env)
    gateway = env.client.app.state.gateway  # type: ignore[attr-defined]
    follower(gateway.ws).close()  # no background refresh: the request path alone decides
    follower(gateway.ws).refresh()  # the gateway's state, fresh just before the archive
    promote(env.ws, "bc", 1, "archived", "reviewer")  # another process (the CLI) archives it
    gateway._production.clear()  # the served-model cache expired; the state is still within its max age
    size = env.ws.log.size()
    response = env.client.post(
        "/v1/models/bc/predict", json={"inputs": env.rows(1)}, headers=env.headers(env.tokens["inference:read"])
    )
    assert response.status_code == 404, response.text
    assert "model.stage_tampered" not in [e.parse().kind for e in env.ws.log.tail(env.ws.log.size() - size)]


def test_a_token_revoked_by_the_cli_is_refused_within_a_second(cached_env: Env) -> None:
    """The default caches refuse a token revoked by another process within about a second."""
    env = cached_env
    token = env.tokens["admin"]
    assert env.client.get("/v1/admin/tokens", headers=env.headers(token)).status_code == 200
    revoke_token(env.ws, parse_token(token).token_id, "local:admin")
    started = time.monotonic()
    while env.client.get("/v1/admin/tokens", headers=env.headers(token)).status_code == 200:
        assert time.monotonic() - started < 1.5, "a revoked token was still accepted after 1.5 s"
        time.sleep(0.05)


def test_entry_rewritten_to_name_another_model_gets_no_proof(env: Env) -> None:
    """A token limited to ``other`` asks for a proof of a ``bc`` entry whose stored text now names ``other``."""
    _decision, index = _predict(env)
    token = env.tokens["other-model"]
    assert env.client.get("/v1/ledger/checkpoint", headers=env.headers(token)).status_code == 200  # state folded
    with env.ws.engine.connect() as conn:
        text = conn.execute(select(ledger_entries.c.entry).where(ledger_entries.c.idx == index)).scalar_one()
    _set(env, ledger_entries, ledger_entries.c.idx == index, entry=text.replace('"model:bc:1"', '"model:other:1"'))
    response = env.client.get(f"/v1/ledger/proofs/inclusion/{index}", headers=env.headers(token))
    assert response.status_code == 503, response.text
    assert response.json()["type"] == "urn:mlwarden:problem:integrity-failure"
    _set(env, ledger_entries, ledger_entries.c.idx == index, entry="not an entry")
    response = env.client.get(f"/v1/ledger/proofs/inclusion/{index}", headers=env.headers(token))
    assert response.status_code == 503, response.text
