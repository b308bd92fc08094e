"""A promoted scikit-learn pipeline with a text column, served over HTTP: strings where the model takes them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mlwarden.api.app import create_app
from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.identity.tokens import create_token
from mlwarden.registry.dataset_versions import register_dataset
from mlwarden.registry.governance import approve_and_promote
from mlwarden.registry.models import register_model
from mlwarden.samples import MixedSample, mixed_pipeline_model
from mlwarden.workspace import init_workspace, open_workspace


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> MixedSample:
    return mixed_pipeline_model(tmp_path_factory.mktemp("mixed-api"))


@pytest.fixture
def served(tmp_path: Path, mixed: MixedSample) -> Iterator[tuple[TestClient, dict[str, str]]]:
    settings = Settings(database_url=None, auth_cache_seconds=0, rate_limit=0, gc_freeze=False)
    options = WorkspaceOptions.from_settings(settings, tmp_path / "ws")
    init_workspace(options)
    ws = open_workspace(options)
    register_dataset(ws, name="mixed-train", path=mixed.train_csv, principal="alice")
    register_model(ws, name="mixed", path=mixed.pipeline, card_path=mixed.card, principal="alice")
    approve_and_promote(ws, "mixed", 1, approver="reviewer")
    token, _ = create_token(ws, name="reader", scopes=["inference:read"], principal="admin")
    with TestClient(create_app(options, settings)) as client:
        yield client, {"Authorization": f"Bearer {token}"}
    ws.close()


def _post(served: tuple[TestClient, dict[str, str]], inputs: Any) -> Any:
    client, headers = served
    return client.post("/v1/models/mixed/predict", json={"inputs": inputs}, headers=headers)


def test_pipeline_predicts_rows_with_strings(served: tuple[TestClient, dict[str, str]]) -> None:
    """Objects and lists carrying a city name are answered, one label per row."""
    named = [{"income": 70.0, "age": 40, "city": "paris"}, {"income": 35.5, "age": 22, "city": "lille"}]
    response = _post(served, named)
    assert response.status_code == 200, response.text
    assert [p["label"] for p in response.json()["predictions"]] == [1, 0]
    assert _post(served, [[70.0, 40, "paris"]]).json()["predictions"][0]["label"] == 1


@pytest.mark.parametrize(
    ("row", "field", "needle"),
    [
        ({"income": 50.0, "age": 30, "city": "rome"}, "city", "'rome' is not a category the model knows"),
        ({"income": "12.5", "age": 30, "city": "nice"}, "income", "must be a number, got str '12.5'"),
        ({"income": 50.0, "age": 30, "city": 7}, "city", "must be a string"),
        ([50.0, "30", "nice"], "age", "must be a number"),
    ],
)
def test_wrong_values_are_422_naming_the_field(
    served: tuple[TestClient, dict[str, str]], row: Any, field: str, needle: str
) -> None:
    """An unknown category, a number sent as a string, or a number for the text column: 422 naming the field."""
    response = _post(served, [row])
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == field
    assert needle in response.json()["detail"]
