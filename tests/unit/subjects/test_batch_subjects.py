"""Ingested batches naming data subjects: personal cells sealed per row, erasable, verified by `ledger verify`."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from mlwarden.ledger import merkle
from tests.support.cli import Cli

SUBJECTS = [f"customer-{i % 7}" for i in range(60)]
EMAILS = [f"person{i}@mail.example" for i in range(60)]
CONTRACT = "columns:\n  email: {type: string, pii: true}\n  f0: {type: float}\n"


def _frame(rows: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))
    return pl.DataFrame({f"f{i}": x[:, i] for i in range(4)}).with_columns(
        pl.Series("target", (x[:, 0] + x[:, 1] > 0).astype(np.int64))
    )


def _batch(tmp_path: Path) -> Path:
    notes = ["call me on +44 20 7946 0958" if i % 10 == 0 else "fine" for i in range(60)]
    frame = _frame(60, 2).with_columns(
        pl.Series("customer", SUBJECTS), pl.Series("email", EMAILS), pl.Series("note", notes)
    )
    path = tmp_path / "batch.csv"
    frame.write_csv(path)
    return path


@pytest.fixture
def ingested(cli: Cli, tmp_path: Path) -> dict[str, Any]:
    """A workspace with a reference dataset and one batch ingested with --subject-column customer."""
    assert cli("init").code == 0
    reference, contract = tmp_path / "reference.csv", tmp_path / "contract.yaml"
    _frame(400, 1).with_columns(pl.lit("x@y.example").alias("email")).write_csv(reference)
    contract.write_text(CONTRACT)
    registered = cli("dataset", "register", "loans", str(reference), "--label", "target", "--contract", str(contract))
    assert registered.code == 0, registered.err
    result = cli("data", "ingest", "loans", str(_batch(tmp_path)), "--subject-column", "customer")
    assert result.code in (0, 1), result.err
    outcome: dict[str, Any] = json.loads(result.out)
    return outcome


def _rows(cli: Cli, batch: str) -> list[dict[str, Any]]:
    result = cli("data", "rows", batch)
    assert result.code == 0, result.err
    rows: list[dict[str, Any]] = json.loads(result.out)["rows"]
    return rows


def _entry_text(home: Path, index: int) -> str:
    with sqlite3.connect(home / "mlwarden.db") as db:
        return str(db.execute("select entry from ledger_entries where idx = ?", (index,)).fetchone()[0])


def test_batch_naming_subjects_stores_no_personal_cell_in_clear(cli: Cli, home: Path, ingested: dict[str, Any]) -> None:
    """The stored file and the ledger entry hold no subject, e-mail or phone; counts and names only."""
    assert ingested["sealed"] == {
        "withheld_columns": ["customer", "email"],
        "masked_columns": ["note"],
        "sealed_rows": 60,
        "subject_rows": 60,
        "subjects": 7,
    }
    entry = json.loads(_entry_text(home, ingested["ledger_index"]))
    assert entry["body"]["sealed"]["v"] == 1
    with sqlite3.connect(home / "mlwarden.db") as db:
        stored = db.execute("select row, commitment from batch_sealed_rows order by row").fetchall()
    assert [r for r, _ in stored] == list(range(60))
    leaves = [f"{r} {c}".encode() for r, c in stored]
    assert entry["body"]["sealed"]["commitments_root"] == merkle.merkle_root(leaves).hex()
    stored = (home / "artifacts" / "sha256" / entry["body"]["sha256"][:2] / entry["body"]["sha256"][2:]).read_text()
    assert stored.splitlines()[0] == "f0,f1,f2,f3,target,note"
    for text in (stored, _entry_text(home, ingested["ledger_index"])):
        assert "customer-" not in text
        assert "@mail.example" not in text
        assert "7946" not in text
    assert "call me on [PHONE]" in stored


def test_erasing_a_subject_makes_exactly_their_rows_unreadable(cli: Cli, home: Path, ingested: dict[str, Any]) -> None:
    """Before: every row opens whole. After erasing customer-3: their rows keep clear cells only; verify passes."""
    batch = ingested["batch"]
    before = _rows(cli, batch)
    assert [r["values"]["customer"] for r in before] == SUBJECTS
    assert [r["values"]["email"] for r in before] == EMAILS
    assert before[0]["values"]["note"] == "call me on +44 20 7946 0958"
    erased = cli("privacy", "erase", "--subject", "customer-3", "--reason", "gdpr art. 17")
    assert erased.code == 0, erased.err
    erasure_index = json.loads(erased.out)["ledger_index"]
    after = _rows(cli, batch)
    gone = [i for i, s in enumerate(SUBJECTS) if s == "customer-3"]
    assert [i for i, r in enumerate(after) if "erased" in r] == gone
    for i in gone:
        assert after[i]["erased"] == {"erasure_index": erasure_index}
        assert "email" not in after[i]["values"]
        assert "customer" not in after[i]["values"]
        assert after[i]["values"]["f0"] == before[i]["values"]["f0"]  # clear cells stay
    assert all(after[i] == before[i] for i in range(60) if i not in gone)
    verified = cli("ledger", "verify", "--json")
    assert verified.code == 0, verified.out + verified.err
    payloads = json.loads(verified.out)["payloads"]
    assert payloads["erased"] == len(gone)
    assert payloads["verified"] == 60 - len(gone)
    assert payloads["erased_by"] == {str(erasure_index): len(gone)}
    assert payloads["tampered"] == []
    text = cli("ledger", "verify").out
    assert f"{len(gone)} by the erasure at index {erasure_index}" in text


def test_changed_commitment_of_a_batch_row_fails_verify_naming_the_entry(
    cli: Cli, home: Path, ingested: dict[str, Any]
) -> None:
    """A commitment rewritten in batch_sealed_rows no longer matches the entry's root: exit 1, the entry named."""
    with sqlite3.connect(home / "mlwarden.db") as db:
        db.execute("update batch_sealed_rows set commitment = ? where row = 5", ("0" * 64,))
    result = cli("ledger", "verify", "--json")
    assert result.code == 1
    tampered = json.loads(result.out)["payloads"]["tampered"]
    assert [t["index"] for t in tampered] == [ingested["ledger_index"]]
    assert "do not match the entry" in tampered[0]["problem"]


def test_altered_ciphertext_of_a_batch_row_fails_verify_and_reading(
    cli: Cli, home: Path, ingested: dict[str, Any]
) -> None:
    """A flipped ciphertext byte of one sealed row: verify exit 1 naming the entry; `data rows` refuses."""
    with sqlite3.connect(home / "mlwarden.db") as db:
        (blob,) = db.execute(
            "select ciphertext from privacy_payloads where decision_id = ?", (f"batch:{ingested['batch']}:7",)
        ).fetchone()
        flipped = bytes([blob[0] ^ 1]) + bytes(blob[1:])
        db.execute(
            "update privacy_payloads set ciphertext = ? where decision_id = ?",
            (flipped, f"batch:{ingested['batch']}:7"),
        )
    result = cli("ledger", "verify", "--json")
    assert result.code == 1
    assert [t["index"] for t in json.loads(result.out)["payloads"]["tampered"]] == [ingested["ledger_index"]]
    refused = cli("data", "rows", ingested["batch"])
    assert refused.code != 0
    assert f"ledger entry {ingested['ledger_index']}" in refused.err


def test_deleted_batch_payload_without_erasure_fails_verify(cli: Cli, home: Path, ingested: dict[str, Any]) -> None:
    """Deleting a sealed row's payload is not an erasure: verify exit 1, naming the entry."""
    with sqlite3.connect(home / "mlwarden.db") as db:
        db.execute("delete from privacy_payloads where decision_id = ?", (f"batch:{ingested['batch']}:0",))
    result = cli("ledger", "verify", "--json")
    assert result.code == 1
    report = json.loads(result.out)["payloads"]
    assert report["absent"] == 1
    assert [t["index"] for t in report["tampered"]] == [ingested["ledger_index"]]


def test_subject_column_must_exist_and_nothing_is_recorded(cli: Cli, tmp_path: Path, home: Path) -> None:
    """An unknown --subject-column is a one-line input error (exit 2); the ledger does not grow."""
    assert cli("init").code == 0
    reference = tmp_path / "reference.csv"
    _frame(400, 1).write_csv(reference)
    assert cli("dataset", "register", "loans", str(reference), "--label", "target").code == 0
    size = json.loads(cli("ledger", "verify", "--json").out)["size"]
    result = cli("data", "ingest", "loans", str(_batch(tmp_path)), "--subject-column", "nobody")
    assert result.code == 2
    assert "subject column 'nobody' is not in the batch" in result.err
    assert json.loads(cli("ledger", "verify", "--json").out)["size"] == size


def test_subject_export_carries_their_batch_rows_and_verifies_offline(
    cli: Cli, home: Path, tmp_path: Path, ingested: dict[str, Any]
) -> None:
    """Subject access includes the subject's ingested rows (cells opened, each proven under the batch's root);
    a changed cell, a moved row or a foreign row fail the offline check; after erasure none is exported."""
    out = tmp_path / "customer-3.json"
    assert cli("privacy", "export", "--subject", "customer-3", "--out", str(out)).code == 0
    document = json.loads(out.read_text())
    rows = document["batch_rows"]
    mine = [i for i, s in enumerate(SUBJECTS) if s == "customer-3"]
    assert [r["row"] for r in rows] == mine
    assert [r["value"]["cells"]["email"] for r in rows] == [EMAILS[i] for i in mine]
    assert {r["value"]["cells"]["customer"] for r in rows} == {"customer-3"}
    assert {r["batch"] for r in rows} == {ingested["batch"]}
    pub = str(home / "keys" / "ledger.pub")
    checked = cli("privacy", "verify-export", str(out), "--public-key", pub, use_home=False)
    assert checked.code == 0, checked.err
    assert json.loads(checked.out)["batch_rows"] == len(mine)

    def forged(change: Any) -> str:
        copy = json.loads(out.read_text())
        change(copy["batch_rows"])
        path = tmp_path / "forged.json"
        path.write_text(json.dumps(copy))
        result = cli("privacy", "verify-export", str(path), "--public-key", pub, use_home=False)
        assert result.code != 0
        return result.err

    def changed_cell(rows: list[dict[str, Any]]) -> None:
        rows[0]["value"]["cells"]["email"] = "someone.else@mail.example"

    def moved_row(rows: list[dict[str, Any]]) -> None:  # the same payload claimed at another position
        rows[0]["row_position"] = rows[1]["row_position"]

    def renumbered(rows: list[dict[str, Any]]) -> None:  # claim the row is another row of the batch
        rows[0]["row"] = rows[0]["value"]["row"] = rows[1]["row"]

    for change in (changed_cell, moved_row, renumbered):
        assert f"batch row {rows[0]['row'] if change is not renumbered else rows[1]['row']}" in forged(change)
    assert cli("privacy", "erase", "--subject", "customer-3", "--reason", "request").code == 0
    after = json.loads(cli("privacy", "export", "--subject", "customer-3").out)
    assert after["batch_rows"] == []
    others = json.loads(cli("privacy", "export", "--subject", "customer-4").out)["batch_rows"]
    assert [r["row"] for r in others] == [i for i, s in enumerate(SUBJECTS) if s == "customer-4"]
