"""Batch uploads over HTTP: odd but legal data is screened cleanly, unusable data is a recorded 422."""

from __future__ import annotations

import polars as pl
import pytest

from mlwarden.identity.tokens import create_token
from mlwarden.ledger.entry import Entry
from mlwarden.registry.dataset_versions import register_dataset
from tests.unit.api.conftest import Env


@pytest.fixture
def cells(env: Env) -> tuple[Env, dict[str, str], pl.DataFrame]:
    register_dataset(env.ws, name="cells", path=env.sample.train_csv, principal="alice", label="target")
    writer, _ = create_token(env.ws, name="etl", scopes=["data:write"], principal="admin")
    return env, {"Authorization": f"Bearer {writer}", "content-type": "text/csv"}, pl.read_csv(env.sample.eval_csv)


def _post(env: Env, headers: dict[str, str], body: bytes, filename: str = "b.csv") -> object:
    return env.client.post(f"/v1/datasets/cells/batches?filename={filename}", content=body, headers=headers)


def _recorded(env: Env, before: int) -> list[Entry]:
    return [Entry.parse(t) for _i, t, _h in env.ws.log.iter_rows(before) if b"request.rejected" in t]


def test_single_class_labels_are_screened_not_a_500(cells: tuple[Env, dict[str, str], pl.DataFrame]) -> None:
    """A batch whose labels are all one class is accepted or quarantined (or a 422), never a server error."""
    env, headers, pool = cells
    one_class = pool.filter(pl.col("target") == 1).head(60)
    response = _post(env, headers, one_class.write_csv().encode())
    assert response.status_code in (201, 202, 422), response.text  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", ["NaN", "inf", "-inf", "1e400"])
def test_non_finite_numbers_in_a_batch_are_refused(cells: tuple[Env, dict[str, str], pl.DataFrame], value: str) -> None:
    """NaN or infinite values in a numeric column are a recorded 422 naming the column, never a 500."""
    env, headers, pool = cells
    text = pool.head(60).write_csv()
    lines = text.splitlines()
    first = lines[1].split(",")
    first[3] = value
    lines[1] = ",".join(first)
    before = env.ws.log.size()
    response = _post(env, headers, ("\n".join(lines) + "\n").encode())
    assert response.status_code == 422, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    assert pool.columns[3] in response.json()["detail"]  # type: ignore[attr-defined]
    assert _recorded(env, before)


def test_repeated_column_name_is_refused(cells: tuple[Env, dict[str, str], pl.DataFrame]) -> None:
    """A header naming a column twice is a recorded 422: never screened on one copy and stored with the other."""
    env, headers, pool = cells
    frame = pool.head(60)
    column = frame.columns[0]
    text = frame.write_csv()
    header, rest = text.split("\n", 1)
    doubled = header + f",{column}\n" + "\n".join(f"{line},-999" for line in rest.splitlines()) + "\n"
    before = env.ws.log.size()
    response = _post(env, headers, doubled.encode())
    assert response.status_code == 422, response.text  # type: ignore[attr-defined]
    assert column in response.json()["detail"]  # type: ignore[attr-defined]
    assert _recorded(env, before)


@pytest.mark.parametrize("filename", ["..", ".", "../x.csv", "a/b.csv", "..%2F..%2Fx.csv"])
def test_batch_filename_with_a_path_is_refused(cells: tuple[Env, dict[str, str], pl.DataFrame], filename: str) -> None:
    """``?filename=..`` or a path is a recorded 4xx."""
    env, headers, pool = cells
    before = env.ws.log.size()
    response = _post(env, headers, pool.head(60).write_csv().encode(), filename)
    assert response.status_code in (400, 422), response.text  # type: ignore[attr-defined]
    assert _recorded(env, before)
