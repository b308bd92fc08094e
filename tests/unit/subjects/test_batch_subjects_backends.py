"""Sealed batch rows on SQLite and PostgreSQL: ingest naming subjects, erase one, read back, audit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mlwarden.data.batch_rows import open_batch_rows
from mlwarden.data.ingest import ingest
from mlwarden.privacy import IdentifierRefused
from mlwarden.registry.dataset_versions import register_dataset
from mlwarden.subjects.audit import audit_payloads
from mlwarden.subjects.erasure import erase_data_subject
from mlwarden.workspace import Workspace


def _frame(rows: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    return pl.DataFrame({f"f{i}": x[:, i] for i in range(3)}).with_columns(
        pl.Series("target", (x[:, 0] > 0).astype(np.int64))
    )


@pytest.fixture
def loans(workspace: Workspace, tmp_path: Path) -> Workspace:
    reference = tmp_path / "reference.parquet"
    _frame(300, 1).write_parquet(reference)
    register_dataset(workspace, name="loans", path=reference, principal="alice", label="target")
    return workspace


def test_parquet_batch_rows_sealed_per_subject_and_erased_on_both_backends(loans: Workspace, tmp_path: Path) -> None:
    """Rows of `a` and `b` open; erasing `a` leaves exactly a's rows erased, b's and the unnamed row intact."""
    subjects = ["a", "b", None, "a", "b", "b"] * 5
    batch = tmp_path / "batch.parquet"
    _frame(30, 2).with_columns(pl.Series("who", subjects, dtype=pl.String)).write_parquet(batch)
    outcome = ingest(loans, "loans", batch, "etl", subject_column="who")
    assert outcome["sealed"]["subject_rows"] == 25
    assert outcome["sealed"]["subjects"] == 2
    before = open_batch_rows(loans, outcome["batch"])
    assert [r["values"]["who"] for r in before] == subjects
    erased = erase_data_subject(loans, "a", reason="asked to be forgotten", principal="dpo")
    after = open_batch_rows(loans, outcome["batch"])
    assert [i for i, r in enumerate(after) if "erased" in r] == [i for i, s in enumerate(subjects) if s == "a"]
    assert {r["erased"]["erasure_index"] for r in after if "erased" in r} == {erased["ledger_index"]}
    assert [r["values"].get("who") for r in after] == [None if s == "a" else s for s in subjects]
    report = audit_payloads(loans)
    assert (report.verified, report.erased, report.tampered) == (20, 10, [])
    assert dict(report.erased_by) == {erased["ledger_index"]: 10}


def test_free_text_refuse_turns_a_batch_with_an_identifier_away(loans: Workspace, tmp_path: Path) -> None:
    """With `free_text: refuse`, a text cell holding an e-mail refuses the batch (column, row, kind), unrecorded."""
    loans.options.paths.policy.write_text("privacy:\n  free_text: refuse\n")
    batch = tmp_path / "batch.csv"
    notes = ["fine"] * 29 + ["write to jo@corp.example"]
    _frame(30, 2).with_columns(pl.Series("note", notes)).write_csv(batch)
    size = loans.log.size()
    with pytest.raises(IdentifierRefused, match=r"batch column 'note', row 29: free text holds identifiers \(email\)"):
        ingest(loans, "loans", batch, "etl")
    assert loans.log.size() == size
