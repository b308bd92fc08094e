"""A database writer without the workspace key cannot loosen what screening enforces (contract, label, source)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import update

from mlwarden.data.ingest import ingest, release
from mlwarden.errors import PolicyDenied, TamperedRow
from mlwarden.store.schema import batches, dataset_versions
from mlwarden.trust.audit import audit_all
from mlwarden.trust.follower import StateFollower
from mlwarden.workspace import Workspace
from tests.unit.data.conftest import _batch


def _rows_named(ws: Workspace) -> list[tuple[str, str]]:
    state = StateFollower(ws.engine, ws.signer, use_snapshot=False).refresh()
    return [(f.table, f.row) for f in audit_all(ws, state)]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("contract", None),  # drop the contract
        ("contract", "columns:\n  f0: {type: float}\n"),  # replace it with a lax one
        ("label", None),  # no label: label flips go unseen
        ("label", "f1"),  # a different label column
        ("source", "/tmp/another-reference.csv"),  # re-point the reference
        ("sha256", "0" * 64),
    ],
)
def test_changed_dataset_row_is_refused_recorded_and_named(
    dataset: Workspace,
    split: tuple[Path, pl.DataFrame],
    tmp_path: Path,
    column: str,
    value: str | None,
) -> None:
    """Every column screening uses is signed: a changed row stops ingestion, is recorded, and verify names it."""
    rows, path = _batch(split[1], tmp_path, "clean.csv")
    rows.write_csv(path)
    with dataset.engine.begin() as conn:
        conn.execute(
            update(dataset_versions)
            .where(dataset_versions.c.name == "cells", dataset_versions.c.version == 1)
            .values({column: value})
        )
    size = dataset.log.size()
    with pytest.raises(TamperedRow, match="dataset:cells:1 was changed outside mlwarden"):
        ingest(dataset, "cells", path, "alice")
    recorded = [e.parse() for e in dataset.log.tail(dataset.log.size() - size)]
    assert [e.kind for e in recorded] == ["dataset.integrity_failed"]
    assert recorded[0].subject == "dataset:cells:1"
    assert ("dataset_versions", "dataset:cells:1") in _rows_named(dataset)


def test_untouched_datasets_are_not_named(dataset: Workspace) -> None:
    """The audit has no false alarms on an honest workspace."""
    assert _rows_named(dataset) == []


def test_ingester_column_rewritten_does_not_let_the_ingester_release(
    dataset: Workspace,
    split: tuple[Path, pl.DataFrame],
    tmp_path: Path,
) -> None:
    """Who ingested a batch comes from its ledger entry: rewriting ``ingested_by`` changes nothing."""
    rows, path = _batch(split[1], tmp_path, "dups.csv")
    pl.concat([rows, rows[:60]]).write_csv(path)
    batch = ingest(dataset, "cells", path, "mallory")["batch"]
    with dataset.engine.begin() as conn:
        conn.execute(update(batches).where(batches.c.id == batch).values(ingested_by="someone-else"))
    with pytest.raises(PolicyDenied, match="mallory"):
        release(dataset, batch, "mallory", "trust me")
    assert ("batches", batch) in _rows_named(dataset)


def test_batch_marked_released_in_the_database_is_named(
    dataset: Workspace,
    split: tuple[Path, pl.DataFrame],
    tmp_path: Path,
) -> None:
    """A quarantined batch flipped to 'released' by SQL is not a release: the audit names the row."""
    rows, path = _batch(split[1], tmp_path, "dups.csv")
    pl.concat([rows, rows[:60]]).write_csv(path)
    batch = ingest(dataset, "cells", path, "mallory")["batch"]
    with dataset.engine.begin() as conn:
        conn.execute(update(batches).where(batches.c.id == batch).values(status="released", released_by="bob"))
    assert ("batches", batch) in _rows_named(dataset)
