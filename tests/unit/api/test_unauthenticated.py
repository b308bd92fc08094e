"""Unauthenticated floods: limited per source address before authentication, recorded as window summaries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.ledger.entry import Entry
from mlwarden.samples import SampleModel
from mlwarden.workspace import open_workspace
from tests.unit.api.conftest import Env, make_env


def _settings(**overrides: object) -> Settings:
    base: dict[str, object] = {"database_url": None, "auth_cache_seconds": 0, "rate_limit": 0, "gc_freeze": False}
    return Settings(**{**base, **overrides})  # type: ignore[arg-type]


def _entries_after_shutdown(home: Path, settings: Settings, before: int) -> list[Entry]:
    ws = open_workspace(WorkspaceOptions.from_settings(settings, home))
    try:
        return [Entry.parse(t) for _i, t, _h in ws.log.iter_rows(before)]
    finally:
        ws.close()


def test_unauthenticated_flood_is_a_handful_of_entries(tmp_path: Path, api_sample: SampleModel) -> None:
    """1,000 bad-token requests write at most a few summary entries whose counts add up to 1,000."""
    settings = _settings(anon_rate_limit=5, anon_rate_burst=50)
    run = make_env(tmp_path / "ws", api_sample, settings)
    env = next(run)
    before = env.ws.log.size()
    statuses = []
    for i in range(1000):
        token = "mlw_not_a_token" if i % 2 else env.tokens["altered"]
        statuses.append(env.client.get("/v1/ledger/checkpoint", headers=env.headers(token)).status_code)
    assert set(statuses) == {401, 429}
    assert statuses[:50] == [401] * 50  # the source's burst, then refused at the door
    next(run, None)  # shutdown: what was counted is recorded
    entries = _entries_after_shutdown(tmp_path / "ws", settings, before)
    assert {e.kind for e in entries} == {"request.rejected_summary"}
    assert len(entries) <= 3
    assert sum(e.body["count"] for e in entries) == 1000
    assert sum(sum(e.body["reasons"].values()) for e in entries) == 1000
    by_status = [e.body["statuses"] for e in entries]
    assert sum(s.get("401", 0) for s in by_status) == statuses.count(401)
    assert sum(s.get("429", 0) for s in by_status) == statuses.count(429)
    assert sum(e.body["sources"].get("testclient", 0) for e in entries) == 1000
    assert sum(e.body["paths"].get("/v1/ledger/checkpoint", 0) for e in entries) == 1000
    assert all(e.principal == "system:gateway" for e in entries)


def test_summary_is_written_every_n_events(tmp_path: Path, api_sample: SampleModel) -> None:
    """With a window of N events, a long flood is recorded as about count/N entries, none lost."""
    settings = _settings(anon_rate_limit=0, rejection_summary_events=100)
    run = make_env(tmp_path / "ws", api_sample, settings)
    env = next(run)
    before = env.ws.log.size()
    for _ in range(300):
        assert env.client.get("/v1/ledger/checkpoint").status_code == 401
    next(run, None)
    entries = _entries_after_shutdown(tmp_path / "ws", settings, before)
    assert 2 <= len(entries) <= 6
    assert sum(e.body["count"] for e in entries) == 300


@pytest.fixture
def guarded(tmp_path: Path, api_sample: SampleModel) -> Iterator[Env]:
    yield from make_env(tmp_path / "ws", api_sample, _settings(anon_rate_limit=1, anon_rate_burst=3))


def test_source_over_its_budget_gets_429_before_authentication(guarded: Env) -> None:
    """After its burst of rejections a source gets 429 with Retry-After, even with a valid token, until it refills."""
    codes = [guarded.client.get("/v1/ledger/checkpoint").status_code for _ in range(5)]
    assert codes == [401, 401, 401, 429, 429]
    refused = guarded.client.get("/v1/ledger/checkpoint", headers=guarded.headers(guarded.tokens["audit:read"]))
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["retry-after"]) >= 1
    assert guarded.client.get("/healthz").status_code == 200  # health checks are never refused


def test_authenticated_traffic_spends_nothing_from_the_source(guarded: Env) -> None:
    """Allowed requests and authenticated denials do not spend the source's budget of rejections."""
    headers = guarded.headers(guarded.tokens["inference:read"])
    for _ in range(10):
        assert guarded.client.get("/v1/ledger/checkpoint", headers=headers).status_code == 403
    ok = guarded.client.get("/v1/ledger/checkpoint", headers=guarded.headers(guarded.tokens["audit:read"]))
    assert ok.status_code == 200


def test_authenticated_denials_stay_one_entry_each(guarded: Env) -> None:
    """Each denial of a known caller is its own ledger entry, naming the caller."""
    before = guarded.ws.log.size()
    for _ in range(5):
        guarded.client.get("/v1/ledger/checkpoint", headers=guarded.headers(guarded.tokens["inference:read"]))
    denied = [Entry.parse(t) for _i, t, _h in guarded.ws.log.iter_rows(before)]
    assert [e.kind for e in denied] == ["access.denied"] * 5
    assert all(e.principal.startswith("token:") for e in denied)


def test_malformed_json_before_authentication_is_summed(guarded: Env) -> None:
    """Malformed JSON is read before the token is checked: its rejection is counted, not written alone."""
    before = guarded.ws.log.size()
    summary = guarded.client.app.state.rejections.summary  # type: ignore[attr-defined]
    response = guarded.client.post(
        "/v1/models/bc/predict", content=b'{"inputs": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert guarded.ws.log.size() == before
    assert summary.peek()["statuses"] == {"400": 1}


@pytest.fixture
def sized(tmp_path: Path, api_sample: SampleModel) -> Iterator[Env]:
    settings = _settings(
        max_body_bytes=2048, max_body_bytes_predict=4096, max_upload_bytes_model=1 << 20, max_upload_bytes_batch=8192
    )
    yield from make_env(tmp_path / "ws", api_sample, settings)


def _problem_413(response: object, limit: int, setting: str) -> None:
    assert response.status_code == 413, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert str(limit) in body["detail"]
    assert setting in body["detail"]
    assert body["limit"] == limit


def test_each_route_has_its_own_body_limit(sized: Env) -> None:
    """Predictions, model uploads and batch uploads are held to their own limits, each named in the 413."""
    from mlwarden.identity.tokens import create_token

    writer, _ = create_token(sized.ws, name="ci", scopes=["model:write", "data:write"], principal="admin")
    headers = sized.headers(writer)
    predict = sized.client.post(
        "/v1/models/bc/predict", content=b"{" + b" " * 5000 + b"}",
        headers={**sized.headers(sized.tokens["inference:read"]), "content-type": "application/json"},
    )  # fmt: skip
    _problem_413(predict, 4096, "MLWARDEN_MAX_BODY_BYTES_PREDICT")
    three_kib = sized.client.post(
        "/v1/models/bc/predict", content=b'{"inputs": [[' + b"0.5, " * 29 + b"0.5]]" + b" " * 3000 + b"}",
        headers={**sized.headers(sized.tokens["inference:read"]), "content-type": "application/json"},
    )  # fmt: skip
    assert three_kib.status_code == 200, three_kib.text  # over the JSON default, within the predict limit
    model = sized.sample.skops.read_bytes()
    assert len(model) > 4096
    files = {"model": ("m.skops", model), "card": ("card.md", sized.sample.card.read_bytes())}
    made = sized.client.post("/v1/models/up/versions", files=files, headers=headers)
    assert made.status_code == 201, made.text
    huge = {"model": ("m.skops", b"\0" * (1 << 20)), "card": ("card.md", b"# card\n")}
    _problem_413(
        sized.client.post("/v1/models/up/versions", files=huge, headers=headers),
        1 << 20,
        "MLWARDEN_MAX_UPLOAD_BYTES_MODEL",
    )
    batch = b"a,b\n" + b"1,2\n" * 3000
    _problem_413(
        sized.client.post("/v1/datasets/x/batches?filename=b.csv", content=batch, headers=headers),
        8192,
        "MLWARDEN_MAX_UPLOAD_BYTES_BATCH",
    )


def test_body_over_the_limit_while_streaming_is_413(sized: Env) -> None:
    """A chunked body with no Content-Length is cut off at the limit with a 413 problem."""

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * 1024

    response = sized.client.post(
        "/v1/models/bc/predict", content=chunks(),
        headers={**sized.headers(sized.tokens["inference:read"]), "content-type": "application/json"},
    )  # fmt: skip
    _problem_413(response, 4096, "MLWARDEN_MAX_BODY_BYTES_PREDICT")
