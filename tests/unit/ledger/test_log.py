"""The stored log on SQLite and PostgreSQL: receipts, proofs from stored hashes, concurrency, checks."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text, update

from mlwarden.config import WorkspaceOptions
from mlwarden.errors import IntegrityError, InvalidInput, LedgerUnavailable, NotFound
from mlwarden.ledger import merkle
from mlwarden.ledger.entry import Entry, PreparedEntry
from mlwarden.ledger.notes import Checkpoint
from mlwarden.store.schema import ledger_head
from mlwarden.workspace import Workspace, init_workspace, open_workspace


def _fill(ws: Workspace, n: int, start: int = 0) -> None:
    ws.log.append_many(
        [
            PreparedEntry.build(kind="test.entry", subject=f"s{i}", principal="p", body={"i": i})
            for i in range(start, start + n)
        ]
    )


def _texts(ws: Workspace) -> list[bytes]:
    return [t for _i, t, _h in ws.log.iter_rows()]


def test_append_returns_durable_receipts(workspace: Workspace) -> None:
    """Receipts count up from 0 and their leaf hash is the hash of the stored canonical text."""
    receipts = [
        workspace.log.append(kind="review.approved", subject="model:m:1", body={"n": i}, principal="local:alice")
        for i in range(5)
    ]
    assert [r.index for r in receipts] == list(range(5))
    for r in receipts:
        stored = workspace.log.entry(r.index)
        assert merkle.leaf_hash(stored.text.encode()) == r.leaf_hash == stored.leaf_hash
        entry = stored.parse()
        assert entry.index == r.index
        assert entry.body == {"n": r.index}
        assert entry.principal == "local:alice"


def test_proofs_from_stored_hashes_match_the_rfc_functions(workspace: Workspace) -> None:
    """Every inclusion and consistency proof the store answers equals the pure RFC 9162 computation."""
    _fill(workspace, 37)
    texts = _texts(workspace)
    for size in (1, 2, 5, 16, 17, 37):
        root = merkle.merkle_root(texts[:size])
        for index in range(size):
            proof = workspace.log.inclusion_proof(index, size)
            assert proof.root_hash == root
            assert proof.path == merkle.inclusion_proof(texts[:size], index)
        for old in range(1, size + 1):
            cons = workspace.log.consistency_proof(old, size)
            assert cons.path == merkle.consistency_proof(texts[:size], old)
            merkle.verify_consistency(old, size, cons.old_root, cons.new_root, cons.path)


def test_head_note_is_signed_and_matches_the_root(workspace: Workspace) -> None:
    """The stored head is a signed checkpoint of the current size and root."""
    _fill(workspace, 9)
    cp = Checkpoint.open(workspace.log.head_note(), workspace.log.verifier)
    assert cp.size == 9
    assert cp.root == merkle.merkle_root(_texts(workspace))


def test_concurrent_appends_get_unique_consecutive_indices(workspace: Workspace) -> None:
    """32 threads appending at once produce indices 0..n-1 exactly once and a log that verifies."""

    def one(i: int) -> int:
        return workspace.log.append(kind="t", subject=f"s{i}", body={"i": i}, principal="p").index

    with ThreadPoolExecutor(32) as pool:
        indices = list(pool.map(one, range(400)))
    assert sorted(indices) == list(range(400))
    report = workspace.log.verify()
    assert report.ok, report.finding
    assert report.size == 400
    bodies = {Entry.parse(t).body["i"] for t in _texts(workspace)}
    assert bodies == set(range(400))


def test_two_processes_worth_of_logs_share_one_tree(workspace_options: WorkspaceOptions) -> None:
    """Two independently opened logs on one database interleave appends into a single consistent tree."""
    init_workspace(workspace_options)
    a, b = open_workspace(workspace_options), open_workspace(workspace_options)
    try:
        threads = [
            threading.Thread(
                target=lambda ws=ws, tag=tag: [
                    ws.log.append(kind="t", subject=tag, body={"i": i}, principal="p") for i in range(60)
                ]
            )
            for ws, tag in ((a, "a"), (b, "b"))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert a.log.size() == b.log.size() == 120
        report = b.log.verify()
        assert report.ok, report.finding
    finally:
        a.close()
        b.close()


def test_proof_requests_outside_the_log_are_clear_errors(workspace: Workspace) -> None:
    """Unknown indexes and sizes are reported as such, never as a crash."""
    _fill(workspace, 3)
    with pytest.raises(NotFound):
        workspace.log.inclusion_proof(3)
    with pytest.raises(InvalidInput):
        workspace.log.inclusion_proof(0, 10)
    with pytest.raises(InvalidInput):
        workspace.log.consistency_proof(3, 2)


def test_open_detects_a_tampered_frontier(workspace_options: WorkspaceOptions) -> None:
    """A frontier edited in the database is caught when the log is opened, before any append."""
    init_workspace(workspace_options)
    ws = open_workspace(workspace_options)
    _fill(ws, 6)
    with ws.engine.begin() as conn:
        conn.execute(update(ledger_head).values(frontier=b"\x00" * 64))
    ws.close()
    with pytest.raises(IntegrityError):
        open_workspace(workspace_options)


def test_open_detects_a_rollback_against_the_published_checkpoint(workspace_options: WorkspaceOptions) -> None:
    """Removing entries and forging the head back is caught against the checkpoint published outside the database."""
    init_workspace(workspace_options)
    ws = open_workspace(workspace_options)
    _fill(ws, 4)
    old_note = ws.log.head_note()
    _fill(ws, 4, start=4)
    ws.log.checkpoint()
    with ws.engine.begin() as conn:
        conn.execute(text("DELETE FROM ledger_entries WHERE idx >= 4"))
        conn.execute(text("DELETE FROM ledger_nodes WHERE (idx + 1) * (1 << level) > 4"))
        conn.execute(text("DELETE FROM ledger_checkpoints"))
        cp = Checkpoint.open(old_note, ws.log.verifier)
        frontier = b"".join(
            conn.execute(text("SELECT hash FROM ledger_nodes WHERE level = 2 AND idx = 0")).scalar_one() for _ in [0]
        )
        assert cp.size == 4
        conn.execute(update(ledger_head).values(size=4, frontier=frontier, note=old_note))
    ws.close()
    with pytest.raises(IntegrityError) as caught:
        open_workspace(workspace_options)
    assert caught.value.problem == "rolled back"
    assert caught.value.index == 4


@pytest.mark.parametrize("tamper", ["none", "changed", "deleted", "truncated", "extra-beyond-head"])
def test_parallel_verification_agrees_with_one_pass(workspace: Workspace, tamper: str) -> None:
    """Chunked verification in worker processes finds exactly what the one-pass verifier finds."""
    _fill(workspace, 150)
    workspace.log.checkpoint()
    _fill(workspace, 37, start=150)
    with workspace.engine.begin() as conn:
        if tamper == "changed":
            conn.execute(
                text("UPDATE ledger_entries SET entry = replace(entry, :a, :b) WHERE idx = 77"),
                {"a": '"i":77', "b": '"i":78'},
            )
        elif tamper == "deleted":
            conn.execute(text("DELETE FROM ledger_entries WHERE idx = 64"))
        elif tamper == "truncated":
            conn.execute(text("DELETE FROM ledger_entries WHERE idx >= 170"))
        elif tamper == "extra-beyond-head":
            row = conn.execute(text("SELECT leaf_hash, kind, subject, entry FROM ledger_entries WHERE idx = 3")).one()
            conn.execute(
                text("INSERT INTO ledger_entries (idx, leaf_hash, kind, subject, entry) VALUES (187, :h, :k, :s, :e)"),
                {"h": row[0], "k": row[1], "s": row[2], "e": row[3]},
            )
    one_pass = workspace.log.verify(parallel=False)
    chunked = workspace.log.verify(parallel=True, chunk=16)
    assert (chunked.ok, chunked.finding) == (one_pass.ok, one_pass.finding)
    assert one_pass.ok == (tamper == "none")
    if tamper == "none":
        assert chunked.to_json() == one_pass.to_json()
        assert chunked.size == 187
        assert chunked.root == merkle.merkle_root(_texts(workspace))


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
def test_lost_database_connection_fails_closed_then_recovers(workspace: Workspace) -> None:
    """A dropped writer connection fails the append with no receipt and nothing written; the next works."""
    workspace.log.append(kind="t", subject="before", body={}, principal="p")
    with workspace.engine.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        conn.commit()
    with pytest.raises(LedgerUnavailable):
        workspace.log.append(kind="t", subject="lost", body={}, principal="p")
    receipt = workspace.log.append(kind="t", subject="after", body={}, principal="p")
    assert receipt.index == 1
    assert [Entry.parse(t).subject for t in _texts(workspace)] == ["before", "after"]
    assert workspace.log.verify().ok


def test_transaction_commits_change_and_entry_together(workspace: Workspace) -> None:
    """A state change and its ledger entry land together, or (on error) neither does."""
    with workspace.log.transaction() as tx:
        tx.conn.execute(text("INSERT INTO meta (key, value) VALUES ('probe', 'one')"))
        receipt = tx.append(kind="t.change", subject="probe", body={"v": 1}, principal="p")
    assert receipt.index == 0
    assert workspace.log.entry(0).leaf_hash == receipt.leaf_hash

    class Boom(Exception):
        pass

    with pytest.raises(Boom), workspace.log.transaction() as tx:  # noqa: PT012 - the block is the transaction under test
        tx.conn.execute(text("INSERT INTO meta (key, value) VALUES ('probe2', 'two')"))
        tx.append(kind="t.change", subject="probe2", body={"v": 2}, principal="p")
        raise Boom
    assert workspace.log.size() == 1
    with workspace.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM meta WHERE key = 'probe2'")).scalar() == 0
    assert workspace.log.append(kind="t", subject="after", body={}, principal="p").index == 1
    assert workspace.log.verify().ok
