"""A gateway on a real workspace (SQLite), a production model, and tokens in every state."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mlwarden.api.app import create_app
from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.identity.scopes import Scope
from mlwarden.identity.tokens import create_token, revoke_token
from mlwarden.registry.dataset_versions import register_dataset
from mlwarden.registry.governance import approve_and_promote
from mlwarden.registry.models import register_model
from mlwarden.samples import SampleModel, breast_cancer_model
from mlwarden.workspace import Workspace, init_workspace, open_workspace


@pytest.fixture(scope="session")
def api_sample(tmp_path_factory: pytest.TempPathFactory) -> SampleModel:
    return breast_cancer_model(tmp_path_factory.mktemp("api") / "art", trees=5)


@dataclass
class Env:
    client: TestClient
    ws: Workspace
    tokens: dict[str, str]
    sample: SampleModel

    def headers(self, token: str | None) -> dict[str, str]:
        return {} if token is None else {"Authorization": f"Bearer {token}"}

    def rows(self, n: int = 2) -> list[list[float]]:
        lines = self.sample.eval_csv.read_text().splitlines()[1 : n + 1]
        return [[float(v) for v in line.split(",")[:-1]] for line in lines]


def make_env(home: Path, sample: SampleModel, settings: Settings) -> Iterator[Env]:
    options = WorkspaceOptions.from_settings(settings, home)
    init_workspace(options)
    ws = open_workspace(options)
    register_dataset(ws, name="breast-cancer-train", path=sample.train_csv, principal="alice")
    register_model(ws, name="bc", path=sample.onnx, card_path=sample.card, principal="alice")
    register_model(ws, name="other", path=sample.skops, card_path=sample.card, principal="alice")
    approve_and_promote(ws, "bc", 1, approver="reviewer")
    approve_and_promote(ws, "other", 1, approver="reviewer")
    toks: dict[str, str] = {}
    for scope in Scope:
        toks[scope.value], _ = create_token(ws, name=scope.value, scopes=[scope.value], principal="admin")
    toks["other-model"], _ = create_token(
        ws, name="other-model", scopes=["inference:read", "audit:read"], principal="admin", models=["other"]
    )
    toks["expired"], _ = create_token(
        ws, name="expired", scopes=list(Scope), principal="admin", expires_at=datetime(2000, 1, 1, tzinfo=UTC)
    )
    toks["revoked"], revoked = create_token(ws, name="revoked", scopes=list(Scope), principal="admin")
    revoke_token(ws, revoked.token_id, "admin")
    full = toks[Scope.INFERENCE_READ.value]
    toks["altered"] = full[:-1] + ("A" if full[-1] != "A" else "B")
    toks["malformed"] = "mlw_not_a_token"
    app = create_app(options, settings)
    with TestClient(app) as client:
        yield Env(client, ws, toks, sample)
    ws.close()


@pytest.fixture
def env(tmp_path: Path, api_sample: SampleModel) -> Iterator[Env]:
    settings = Settings(database_url=None, auth_cache_seconds=0, rate_limit=0, gc_freeze=False)
    yield from make_env(tmp_path / "ws", api_sample, settings)
