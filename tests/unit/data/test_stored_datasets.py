"""Datasets and batches live in the workspace by content hash; key columns are checked, never screened."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mlwarden.data.check import infer_contract
from mlwarden.data.ingest import ingest, release
from mlwarden.errors import ArtifactIntegrityError
from mlwarden.registry.dataset_versions import check_dataset_row, dataset_file, get_dataset, register_dataset
from mlwarden.workspace import Workspace
from tests.unit.data.conftest import _batch


def _in_store(ws: Workspace, source: str, data: bytes) -> None:
    sha = hashlib.sha256(data).hexdigest()
    blob = ws.options.paths.artifacts / "sha256" / sha[:2] / sha[2:]
    assert Path(source) == blob
    assert blob.read_bytes() == data


def test_registered_dataset_is_kept_by_hash_and_outlives_its_file(
    workspace: Workspace, split: tuple[Path, pl.DataFrame], tmp_path: Path
) -> None:
    """register copies the file into artifacts/sha256/..; source names that blob; screening works once it is gone."""
    original = tmp_path / "elsewhere" / "reference.csv"
    original.parent.mkdir()
    shutil.copy(split[0], original)
    data = original.read_bytes()
    register_dataset(workspace, name="cells", path=original, principal="alice", label="target")
    ref = get_dataset(workspace, "cells", 1)
    _in_store(workspace, ref["source"], data)
    entry = workspace.log.tail(1)[0].parse()
    assert entry.body["file"] == "reference.csv"  # the original name, kept beside the blob
    original.unlink()
    rows, path = _batch(split[1], tmp_path, "clean.csv")
    rows.write_csv(path)
    outcome = ingest(workspace, "cells", path, "alice")
    assert outcome["status"] == "accepted", outcome["reasons"]
    batch_bytes = path.read_bytes()
    path.unlink()  # an upload's temporary file goes away after the request
    version = get_dataset(workspace, "cells", outcome["dataset_version"])
    _in_store(workspace, version["source"], batch_bytes)
    assert dataset_file(workspace, version).read_bytes() == batch_bytes


def test_released_batch_is_a_stored_version(
    dataset: Workspace, split: tuple[Path, pl.DataFrame], tmp_path: Path
) -> None:
    """A quarantined batch whose file is gone can be released: the version's source is its stored blob."""
    rows, path = _batch(split[1], tmp_path, "dups.csv")
    pl.concat([rows, rows[:60]]).write_csv(path)
    data = path.read_bytes()
    outcome = ingest(dataset, "cells", path, "mallory")
    assert outcome["status"] == "quarantined"
    path.unlink()
    released = release(dataset, outcome["batch"], "bob", "the repeats are real")
    version = get_dataset(dataset, "cells", released["dataset_version"])
    _in_store(dataset, version["source"], data)
    assert version["format"] == "csv"
    assert version["rows"] == 260
    leftovers = [p for p in (dataset.options.paths.artifacts / "sha256").rglob("*") if p.is_file() and "." in p.name]
    assert leftovers == []  # no staged copies beside the blobs


def test_batch_accepted_over_http_is_stored(dataset: Workspace, split: tuple[Path, pl.DataFrame]) -> None:
    """A batch POSTed over HTTP becomes a version whose source is a stored blob, not a deleted temporary file."""
    from fastapi.testclient import TestClient

    from mlwarden.api.app import create_app
    from mlwarden.config import Settings
    from mlwarden.identity.tokens import create_token

    writer, _ = create_token(dataset, name="etl", scopes=["data:write"], principal="admin")
    rows = split[1][np.random.default_rng(5).choice(split[1].height, 200, replace=False)]
    clean = rows.write_csv().encode()
    app = create_app(
        dataset.options, Settings(database_url=dataset.options.database_url, gc_freeze=False, rate_limit=0)
    )
    with TestClient(app) as client:
        auth = {"Authorization": f"Bearer {writer}", "content-type": "text/csv"}
        response = client.post("/v1/datasets/cells/batches?filename=b.csv", content=clean, headers=auth)
        assert response.status_code == 201, response.text
    version = get_dataset(dataset, "cells", response.json()["dataset_version"])
    _in_store(dataset, version["source"], clean)
    assert dataset_file(dataset, version).is_file()


def test_changed_blob_is_an_integrity_failure(
    dataset: Workspace, split: tuple[Path, pl.DataFrame], tmp_path: Path
) -> None:
    """A reference blob edited on disk is refused (by hash) before any batch is screened against it."""
    blob = Path(get_dataset(dataset, "cells", 1)["source"])
    os.chmod(blob, 0o600)
    blob.write_bytes(blob.read_bytes().replace(b"0.", b"9.", 1))
    rows, path = _batch(split[1], tmp_path, "clean.csv")
    rows.write_csv(path)
    with pytest.raises(ArtifactIntegrityError, match="was changed on disk"):
        ingest(dataset, "cells", path, "alice")


def test_new_source_is_signed(dataset: Workspace) -> None:
    """The stored source is what the registration signature covers: re-pointing it fails the check."""
    from sqlalchemy import select

    from mlwarden.store.schema import dataset_versions

    with dataset.engine.connect() as conn:
        row = dict(conn.execute(select(dataset_versions)).mappings().one())
    check_dataset_row(dataset, row)
    with pytest.raises(ArtifactIntegrityError):
        check_dataset_row(dataset, {**row, "source": "/tmp/another.csv"})


def _with_ids(frame: pl.DataFrame, start: int) -> pl.DataFrame:
    return frame.with_columns(pl.int_range(start, start + frame.height).alias("record_id")).select(
        "record_id", *frame.columns
    )


def test_key_column_is_left_out_of_screening(
    workspace: Workspace, split: tuple[Path, pl.DataFrame], tmp_path: Path
) -> None:
    """An id column quarantines every batch as drift; marked role: key (as infer does), clean batches pass."""
    reference = tmp_path / "reference.csv"
    _with_ids(pl.read_csv(split[0]), 0).write_csv(reference)
    contract = tmp_path / "contract.yaml"
    contract.write_text(infer_contract(reference))
    assert "role: key" in contract.read_text()
    register_dataset(workspace, name="plain", path=reference, principal="alice", label="target")
    register_dataset(workspace, name="keyed", path=reference, principal="alice", label="target", contract=contract)
    for seed in range(3):
        rows, path = _batch(split[1], tmp_path, f"clean{seed}.csv", seed)
        _with_ids(rows, 10_000 + 1000 * seed).write_csv(path)  # new records, new ids
        plain = ingest(workspace, "plain", path, "alice")
        assert plain["status"] == "quarantined"
        assert any("record_id" in r for r in plain["reasons"]), plain["reasons"]
        keyed = ingest(workspace, "keyed", path, "alice")
        assert keyed["status"] == "accepted", keyed["reasons"]
    rows, path = _batch(split[1], tmp_path, "dup-ids.csv")
    _with_ids(rows, 0).with_columns(pl.lit(7).alias("record_id")).write_csv(path)
    repeated = ingest(workspace, "keyed", path, "alice")  # the key is still checked by the contract
    assert repeated["status"] == "quarantined"
    assert any("unique on record_id" in r for r in repeated["reasons"]), repeated["reasons"]
