"""Fixtures for data tests: a reference split of breast-cancer and a dataset with a contract and a label."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.datasets import load_breast_cancer

from mlwarden.registry.dataset_versions import register_dataset
from mlwarden.workspace import Workspace

NAMES = [f"f{i}" for i in range(30)]


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pl.DataFrame]:
    data = load_breast_cancer()
    frame = pl.DataFrame({n: data.data[:, i] for i, n in enumerate(NAMES)}).with_columns(
        pl.Series("target", data.target)
    )
    order = np.random.default_rng(0).permutation(frame.height)
    folder = tmp_path_factory.mktemp("ingest")
    reference = folder / "reference.csv"
    frame[order[:350]].write_csv(reference)
    return reference, frame[order[350:]]


@pytest.fixture
def dataset(workspace: Workspace, split: tuple[Path, pl.DataFrame], tmp_path: Path) -> Workspace:
    contract = tmp_path / "contract.yaml"
    contract.write_text(
        "columns:\n  target: {type: int, allowed: [0, 1], nullable: false}\n  f0: {type: float, min: 0}\n"
    )
    register_dataset(workspace, name="cells", path=split[0], principal="alice", label="target", contract=contract)
    return workspace


def _batch(pool: pl.DataFrame, tmp_path: Path, name: str, seed: int = 1, n: int = 200) -> tuple[pl.DataFrame, Path]:
    rows = pool[np.random.default_rng(seed).choice(pool.height, n, replace=False)]
    return rows, tmp_path / name
