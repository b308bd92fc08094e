"""Property-based API testing from /openapi.json: no generated request may produce a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from mlwarden.config import Settings
from mlwarden.samples import SampleModel
from tests.unit.api.conftest import Env, make_env


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory: pytest.TempPathFactory, api_sample: SampleModel) -> Iterator[Env]:
    home: Path = tmp_path_factory.mktemp("fuzz") / "ws"
    yield from make_env(
        home,
        api_sample,
        Settings(database_url=None, auth_cache_seconds=0, rate_limit=0, anon_rate_limit=0, gc_freeze=False),
    )


def _token_for(env: Env, path: str, method: str) -> str:
    if "/admin" in path:
        return env.tokens["admin"]
    if path.startswith(("/v1/ledger", "/v1/decisions")) or (path.endswith("/feedback") and method == "GET"):
        return env.tokens["audit:read"]
    if path == "/v1/feedback":
        return env.tokens["feedback:write"]
    return env.tokens["inference:read"]


def test_no_input_causes_a_server_error(fuzz_env: Env) -> None:
    """Every operation in /openapi.json, fed generated requests with a token of the right scope, never answers 5xx."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_env.client.app)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 12
    for operation in operations:
        _fuzz(fuzz_env, operation)()


def _fuzz(env: Env, operation: Any) -> Any:
    token = _token_for(env, operation.path, operation.method.upper())

    @given(case=operation.as_strategy())
    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def exercise(case: Any) -> None:
        response = case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=[not_a_server_error])
        assert response.status_code < 500, (operation.method, operation.path, response.status_code)

    return exercise
