"""The ledger CLI as a user meets it: receipts, proofs, checkpoints, tamper detection and bad input."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mlwarden.ledger import merkle
from mlwarden.ledger.notes import Checkpoint, NoteVerifier
from tests.unit.cli.conftest import Cli


@pytest.fixture
def filled(cli: Cli, home: Path) -> Path:
    """A workspace with 20 recorded entries and a checkpoint."""
    assert cli("init").code == 0
    lines = "\n".join(
        json.dumps({"kind": "review.approved", "subject": f"model:m:{i}", "body": {"n": i}}) for i in range(20)
    )
    (home.parent / "batch.jsonl").write_text(lines + "\n")
    assert cli("ledger", "record", "--jsonl", str(home.parent / "batch.jsonl")).code == 0
    assert cli("ledger", "checkpoint").code == 0
    return home


@contextmanager
def _db(home: Path) -> Iterator[sqlite3.Connection]:
    """A direct connection to the workspace database, as an attacker with file access has."""
    db = sqlite3.connect(home / "mlwarden.db", isolation_level=None)
    try:
        yield db
    finally:
        db.close()


def _verify(cli: Cli, *extra: str) -> tuple[int, dict[str, object]]:
    result = cli("ledger", "verify", "--json", *extra)
    assert result.out, result.err
    return result.code, json.loads(result.out)


def test_init_creates_everything_and_is_idempotent(cli: Cli, home: Path) -> None:
    """init makes the database (WAL), a 0600 ed25519 key and says where they are; a second run changes nothing."""
    first = cli("init", "--json")
    assert first.code == 0, first.err
    info = json.loads(first.out)
    key = home / "keys" / "ledger.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert str(home) in info["workspace"]
    with _db(home) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    key_bytes = key.read_bytes()
    second = cli("init", "--json")
    assert second.code == 0
    assert json.loads(second.out)["ledger_origin"] == info["ledger_origin"]
    assert key.read_bytes() == key_bytes


def test_record_prints_one_receipt_line(cli: Cli) -> None:
    """record prints {"index": N, "leaf_hash": hex} and the hash is that of the stored entry."""
    cli("init")
    result = cli(
        "ledger", "record", "--kind", "review.approved", "--subject", "model:fraud:3", "--body", '{"by": "alice"}'
    )
    assert result.code == 0, result.err
    (receipt,) = result.json_lines()
    assert receipt == {"index": 0, "leaf_hash": receipt["leaf_hash"]}
    tail = cli("ledger", "tail", "-n", "1").json_lines()
    assert tail[0]["index"] == 0
    assert tail[0]["body"] == {"by": "alice"}
    assert tail[0]["leaf_hash"] == receipt["leaf_hash"]


def test_proofs_verify_against_the_printed_checkpoint(cli: Cli, filled: Path) -> None:
    """The inclusion proof printed by the CLI verifies against the root in the signed checkpoint."""
    note = cli("ledger", "checkpoint").out
    verifier = NoteVerifier.parse((filled / "keys" / "ledger.pub").read_text())
    cp = Checkpoint.open(note, verifier)
    proof = json.loads(cli("ledger", "proof", "inclusion", "7").out)
    assert proof["tree_size"] == cp.size == 20
    merkle.verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]), 7, 20, [bytes.fromhex(h) for h in proof["proof"]], cp.root
    )
    small = json.loads(cli("ledger", "proof", "inclusion", "3", "--size", "9").out)
    assert small["tree_size"] == 9
    cons = json.loads(cli("ledger", "proof", "consistency", "9", "20").out)
    merkle.verify_consistency(
        9, 20, bytes.fromhex(small["root_hash"]), cp.root, [bytes.fromhex(h) for h in cons["proof"]]
    )


def test_intact_ledger_verifies(cli: Cli, filled: Path) -> None:
    """An untouched ledger verifies with exit 0."""
    code, report = _verify(cli)
    assert code == 0
    assert report["ok"] is True
    assert report["size"] == 20


def test_changed_body_is_named(cli: Cli, filled: Path) -> None:
    """Editing one entry's text is reported as 'changed' at that index."""
    with _db(filled) as db:
        text = db.execute("SELECT entry FROM ledger_entries WHERE idx = 11").fetchone()[0]
        db.execute("UPDATE ledger_entries SET entry = ? WHERE idx = 11", (text.replace('"n":11', '"n":99'),))
    code, report = _verify(cli)
    assert (code, report["index"], report["problem"]) == (1, 11, "changed")


def test_changed_body_with_recomputed_leaf_hash_is_named(cli: Cli, filled: Path) -> None:
    """Rewriting the text and its stored leaf hash together is still pinned to the entry."""
    with _db(filled) as db:
        text = db.execute("SELECT entry FROM ledger_entries WHERE idx = 5").fetchone()[0]
        forged = text.replace('"n":5', '"n":55')
        db.execute(
            "UPDATE ledger_entries SET entry = ?, leaf_hash = ? WHERE idx = 5",
            (forged, merkle.leaf_hash(forged.encode())),
        )
    code, report = _verify(cli)
    assert (code, report["index"], report["problem"]) == (1, 5, "changed")


def test_deleted_entry_is_named(cli: Cli, filled: Path) -> None:
    """Deleting a middle entry is reported as 'missing' at its index."""
    with _db(filled) as db:
        db.execute("DELETE FROM ledger_entries WHERE idx = 8")
    code, report = _verify(cli)
    assert (code, report["index"], report["problem"]) == (1, 8, "missing")


def test_swapped_entries_are_named(cli: Cli, filled: Path) -> None:
    """Swapping two entries (text and hash) is reported as 'out of order' at the first of them."""
    with _db(filled) as db:
        a = db.execute("SELECT entry, leaf_hash FROM ledger_entries WHERE idx = 3").fetchone()
        b = db.execute("SELECT entry, leaf_hash FROM ledger_entries WHERE idx = 14").fetchone()
        db.execute("UPDATE ledger_entries SET entry = ?, leaf_hash = ? WHERE idx = 3", b)
        db.execute("UPDATE ledger_entries SET entry = ?, leaf_hash = ? WHERE idx = 14", a)
    code, report = _verify(cli)
    assert (code, report["index"], report["problem"]) == (1, 3, "out of order")


def test_truncated_tail_is_named(cli: Cli, filled: Path) -> None:
    """Deleting the last entries is reported as 'missing' at the first deleted index."""
    with _db(filled) as db:
        db.execute("DELETE FROM ledger_entries WHERE idx >= 16")
    code, report = _verify(cli)
    assert (code, report["index"], report["problem"]) == (1, 16, "missing")


def test_whole_database_rollback_is_caught(cli: Cli, filled: Path, tmp_path: Path) -> None:
    """Restoring an older copy of the database is caught against a checkpoint kept outside it."""
    old = tmp_path / "old.db"
    with _db(filled) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(filled / "mlwarden.db", old)
    for i in range(5):
        cli("ledger", "record", "--kind", "late", "--subject", f"x{i}", "--body", "{}")
    saved = tmp_path / "published.checkpoint"
    saved.write_text(cli("ledger", "checkpoint").out)
    for suffix in ("-wal", "-shm"):
        Path(str(filled / "mlwarden.db") + suffix).unlink(missing_ok=True)
    shutil.copy(old, filled / "mlwarden.db")
    code, report = _verify(cli, "--checkpoint", str(saved))
    assert (code, report["index"], report["problem"]) == (1, 20, "rolled back")
    shutil.rmtree(filled / "checkpoints")
    code, report = _verify(cli, "--checkpoint", str(saved))
    assert (code, report["index"], report["problem"]) == (1, 20, "rolled back")


def test_altered_checkpoint_signature_is_caught(cli: Cli, filled: Path) -> None:
    """A stored checkpoint whose signature was changed is reported as 'bad signature'."""
    with _db(filled) as db:
        size, note = db.execute("SELECT size, note FROM ledger_checkpoints").fetchone()
        sig = note.rstrip("\n").rsplit(" ", 1)[1]
        flipped = sig[:20] + ("A" if sig[20] != "A" else "B") + sig[21:]
        db.execute("UPDATE ledger_checkpoints SET note = ? WHERE size = ?", (note.replace(sig, flipped), size))
    code, report = _verify(cli)
    assert (code, report["index"], report["problem"]) == (1, 20, "bad signature")


def test_inserted_entry_is_named(cli: Cli, filled: Path) -> None:
    """Shifting entries up to make room for a forged one is reported as 'extra' at the forged index."""
    with _db(filled) as db:
        rows = db.execute(
            "SELECT idx, entry, leaf_hash, kind, subject FROM ledger_entries WHERE idx >= 10 ORDER BY idx DESC"
        ).fetchall()
        for idx, entry, leaf, kind, subject in rows:
            db.execute("DELETE FROM ledger_entries WHERE idx = ?", (idx,))
            db.execute(
                "INSERT INTO ledger_entries (idx, leaf_hash, kind, subject, entry) VALUES (?, ?, ?, ?, ?)",
                (idx + 1, leaf, kind, subject, entry),
            )
        forged = rows[-1][1].replace('"n":10', '"n":-1')
        db.execute(
            "INSERT INTO ledger_entries (idx, leaf_hash, kind, subject, entry) "
            "VALUES (10, ?, 'review.approved', 'x', ?)",
            (merkle.leaf_hash(forged.encode()), forged),
        )
    code, report = _verify(cli)
    assert (code, report["index"], report["problem"]) == (1, 10, "extra")


def test_export_bundle_verifies_without_the_database(cli: Cli, filled: Path, tmp_path: Path) -> None:
    """An exported bundle verifies with no workspace at all, and a tampered bundle does not."""
    bundle = tmp_path / "bundle"
    assert cli("ledger", "export", str(bundle)).code == 0
    pinned = tmp_path / "trusted.pub"
    shutil.copy(filled / "keys" / "ledger.pub", pinned)
    shutil.rmtree(filled)
    result = cli("ledger", "verify", "--bundle", str(bundle), "--public-key", str(pinned), "--json", use_home=False)
    assert result.code == 0, result.err
    assert json.loads(result.out)["size"] == 20
    lines = (bundle / "entries.jsonl").read_text().splitlines()
    lines[4], lines[5] = lines[5], lines[4]
    (bundle / "entries.jsonl").write_text("\n".join(lines) + "\n")
    result = cli("ledger", "verify", "--bundle", str(bundle), "--public-key", str(pinned), "--json", use_home=False)
    assert result.code == 1
    assert json.loads(result.out)["index"] == 4


def test_malformed_body_is_one_line_error_and_records_nothing(cli: Cli, home: Path) -> None:
    """A broken --body exits non-zero with one line on stderr and no entry."""
    cli("init")
    result = cli("ledger", "record", "--kind", "k", "--subject", "s", "--body", '{"a": ')
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert "not valid JSON" in result.err
    assert "Traceback" not in result.err
    assert cli("ledger", "tail").out == ""


def test_jsonl_with_a_broken_line_records_nothing(cli: Cli, home: Path) -> None:
    """One bad line in --jsonl names its line number and nothing from the file is recorded."""
    cli("init")
    path = home.parent / "bad.jsonl"
    path.write_text('{"kind": "a", "subject": "s", "body": {}}\n{"kind": "a", "subject": "s", "body": {]\n')
    result = cli("ledger", "record", "--jsonl", str(path))
    assert result.code == 2
    assert "line 2" in result.err
    assert "nothing was recorded" in result.err
    assert result.err.count("\n") == 1
    assert cli("ledger", "tail").out == ""


def test_unknown_workspace_is_a_clear_error(cli: Cli) -> None:
    """Commands outside a workspace say so in one line and exit non-zero."""
    result = cli("ledger", "tail")
    assert result.code == 2
    assert "no mlwarden workspace" in result.err
    assert "mlwarden init" in result.err
    assert result.err.count("\n") == 1


def test_corrupted_key_file_is_a_clear_error(cli: Cli, home: Path) -> None:
    """A damaged signing key stops the command with one line naming the file."""
    cli("init")
    key = home / "keys" / "ledger.key"
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
    os.chmod(key, 0o600)
    result = cli("ledger", "record", "--kind", "k", "--subject", "s", "--body", "{}")
    assert result.code != 0
    assert "ledger.key" in result.err
    assert "corrupted" in result.err
    assert result.err.count("\n") == 1


def test_key_readable_by_others_is_refused(cli: Cli, home: Path) -> None:
    """A signing key with loose permissions is not used."""
    cli("init")
    os.chmod(home / "keys" / "ledger.key", 0o644)
    result = cli("ledger", "checkpoint")
    assert result.code != 0
    assert "chmod 600" in result.err
