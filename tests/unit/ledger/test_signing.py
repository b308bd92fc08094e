"""Interval signing: the head note may lag but stays consistent, is signed on demand; rollbacks are still caught."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, text, update

from mlwarden.config import WorkspaceOptions
from mlwarden.errors import IntegrityError
from mlwarden.identity.tokens import create_token
from mlwarden.ledger.entry import PreparedEntry
from mlwarden.ledger.log import Log
from mlwarden.ledger.notes import Checkpoint
from mlwarden.store.schema import ledger_head, ledger_nodes
from mlwarden.trust.follower import StateFollower, follower
from mlwarden.workspace import Workspace, init_workspace, open_workspace


def _fill(ws: Workspace, n: int, start: int = 0) -> None:
    for i in range(start, start + n):  # one commit each: every commit may (or may not) sign
        ws.log.append(kind="test.entry", subject=f"s{i}", principal="p", body={"i": i})


def _note(ws: Workspace) -> Checkpoint:
    return Checkpoint.open(ws.log.head_note(), ws.log.verifier)


@pytest.fixture
def lagging(workspace_options: WorkspaceOptions) -> Iterator[Workspace]:
    """A workspace whose group commits sign once an hour: the first commit signs, the next ones do not."""
    init_workspace(workspace_options)
    ws = open_workspace(workspace_options)
    ws.log.sign_interval = 3600
    _fill(ws, 8)
    yield ws
    ws.close()


def test_group_commits_sign_once_per_interval_and_the_note_lags(lagging: Workspace) -> None:
    """Eight commits, one signature: the note covers the first entry only, and opening the log accepts it."""
    assert lagging.log.size() == 8
    assert _note(lagging).size == 1
    assert lagging.log.unsigned
    assert lagging.log.check_head().size == 1  # consistent with the stored tree: no alarm


def test_verified_entry_signs_the_head_on_demand_once(lagging: Workspace) -> None:
    """An entry past the note is proven right away: the head is signed now, and only once."""
    entry, proof = lagging.log.verified_entry(7)
    assert entry.body == {"i": 7}
    note = lagging.log.head_note()
    assert Checkpoint.open(note, lagging.log.verifier).size == 8
    assert proof.tree_size == 8
    lagging.log.verified_entry(6)
    assert lagging.log.head_note() == note  # covered already: no second signature
    assert not lagging.log.unsigned


def test_close_signs_the_head_it_left_unsigned(lagging: Workspace, workspace_options: WorkspaceOptions) -> None:
    """A clean close signs the final head; the next process finds the note covering every entry."""
    lagging.close()
    ws = open_workspace(workspace_options)
    try:
        assert _note(ws).size == ws.log.size() == 8
    finally:
        ws.close()


def test_follower_signs_for_a_state_change_past_the_lagging_note_only(lagging: Workspace) -> None:
    """A revocation committed after the note is enforced at once (signed on demand); predictions alone sign nothing."""
    _token, record = create_token(lagging, name="t", scopes=["inference:read"], principal="admin")  # signed
    _fill(lagging, 3, start=8)
    note = lagging.log.head_note()
    state = follower(lagging).refresh()
    assert lagging.log.head_note() == note  # nothing past the note that the state needs: no signature
    assert state.size == _note(lagging).size < lagging.log.size()
    lagging.log.append(kind="token.revoked", subject=f"token:{record.token_id}", body={}, principal="admin")
    stale = StateFollower(lagging.engine, lagging.signer).refresh()  # the stored note only
    assert stale.tokens[record.token_id].revoked_index is None
    state = follower(lagging).refresh()
    assert state.tokens[record.token_id].revoked_index == lagging.log.size() - 1
    assert _note(lagging).size == lagging.log.size()


def test_on_demand_signing_refuses_a_frontier_that_disagrees_with_the_stored_tree(lagging: Workspace) -> None:
    """A head frontier rewritten in the database is never signed: the lookup fails and the note is unchanged."""
    before = lagging.log.head_note()
    with lagging.engine.begin() as conn:
        conn.execute(update(ledger_head).values(frontier=b"\x11" * 32))
    with pytest.raises(IntegrityError, match="frontier"):
        lagging.log.verified_entry(7)
    assert lagging.log.head_note() == before


def test_a_lagging_note_whose_root_differs_from_the_stored_tree_is_caught(lagging: Workspace) -> None:
    """The note signs size 1; a stored leaf rewritten under it no longer gives that root: "changed" on open."""
    with lagging.engine.begin() as conn:
        conn.execute(update(ledger_nodes).where(ledger_nodes.c.level == 0, ledger_nodes.c.idx == 0).values(
            hash=b"\x22" * 32))  # fmt: skip
    with pytest.raises(IntegrityError) as caught:
        lagging.log.check_head()
    assert caught.value.problem == "changed"


def test_a_deleted_tail_is_caught_against_the_lagging_note_and_the_published_checkpoint(
    lagging: Workspace, workspace_options: WorkspaceOptions
) -> None:
    """Entries removed (head forged back to size 1, behind the published checkpoint): "rolled back" on open."""
    lagging.log.checkpoint()  # signs and publishes size 8
    _fill(lagging, 3, start=8)
    with lagging.engine.begin() as conn:
        first_leaf = conn.execute(
            select(ledger_nodes.c.hash).where(ledger_nodes.c.level == 0, ledger_nodes.c.idx == 0)
        ).scalar_one()
        conn.execute(text("DELETE FROM ledger_entries WHERE idx >= 1"))
        conn.execute(text("DELETE FROM ledger_nodes WHERE NOT (level = 0 AND idx = 0)"))
        conn.execute(text("DELETE FROM ledger_checkpoints"))
        conn.execute(update(ledger_head).values(size=1, frontier=first_leaf))
    lagging.log._unsigned = False  # the attacker's process: nothing to sign at close
    lagging.close()
    with pytest.raises(IntegrityError) as caught:
        open_workspace(workspace_options)
    assert caught.value.problem == "rolled back"
    assert caught.value.index == 1


def test_a_note_larger_than_the_head_is_a_rollback(lagging: Workspace) -> None:
    """The head row set back below its own signed note is caught even with no published checkpoint."""
    lagging.log.verified_entry(7)  # note at 8
    with lagging.engine.begin() as conn:
        leaf = conn.execute(select(ledger_nodes.c.hash).where(ledger_nodes.c.level == 2, ledger_nodes.c.idx == 0))
        conn.execute(update(ledger_head).values(size=4, frontier=leaf.scalar_one()))
    for path in lagging.log.published_files():
        path.unlink()
    with pytest.raises(IntegrityError) as caught:
        lagging.log.check_head()
    assert caught.value.problem == "rolled back"


def _sibling_commit(ws: Workspace) -> None:
    """Another writer process: commit, sign and publish ``checkpoints/latest.txt`` (a fresh Log publishes at once)."""
    sibling = Log(ws.engine, ws.signer, publish_dir=ws.options.paths.checkpoints, sign_interval=0)
    sibling.append_many([PreparedEntry.build(kind="test.entry", subject="sibling", principal="p", body={})])
    sibling.close()


@pytest.mark.parametrize("where", ["after the head read", "after the published-file read"])
def test_a_sibling_commit_during_check_head_is_no_false_rollback(
    workspace_options: WorkspaceOptions, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """A sibling commits and publishes a newer checkpoint in the middle of check_head: no "rolled back".

    Reading the head first and the published file second (the old order) turned exactly this
    interleaving into a false alarm that stopped ``serve --workers 2`` from starting.
    """
    init_workspace(workspace_options)
    ws = open_workspace(workspace_options)
    _fill(ws, 3)
    ws.log.publish_head()
    opening = Log(ws.engine, ws.signer, publish_dir=workspace_options.paths.checkpoints)
    fired: list[int] = []
    if where == "after the head read":
        real_read_head = opening._read_head

        def read_head(conn: Any, *, lock: bool = False) -> tuple[int, bytes, str]:
            head = real_read_head(conn, lock=lock)
            if not fired:
                fired.append(head[0])
                _sibling_commit(ws)
            return head

        monkeypatch.setattr(opening, "_read_head", read_head)
    else:
        real_files = opening.published_files

        def published_files() -> list[Any]:
            files = real_files()
            if not fired:
                fired.append(len(files))
                _sibling_commit(ws)
            return files

        monkeypatch.setattr(opening, "published_files", published_files)
    opening.check_head()
    assert fired, "the sibling commit was not interleaved"
    latest = Checkpoint.parse_text(
        (workspace_options.paths.checkpoints / "latest.txt").read_text().split("\n\n", 1)[0] + "\n"
    )
    assert latest.size == 4  # the sibling's commit was published meanwhile
    monkeypatch.undo()
    assert opening.check_head().size == 4  # and the next open sees it consistently
    ws.close()
