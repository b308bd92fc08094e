"""Pending entries: finished by the group commit's prepare stage, a batch per finisher, in order; a failure writes
nothing, a refused item fails its own caller alone."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from mlwarden.errors import InvalidInput
from mlwarden.ledger.entry import Appendable, Entry, PendingEntry, PreparedEntry, finish_entries
from mlwarden.workspace import Workspace


class _Numbered:
    """A finisher that records each batch it was given and numbers its entries."""

    def __init__(self, label: str, *, short: bool = False) -> None:
        self.label = label
        self.short = short
        self.batches: list[list[int]] = []

    def finish(self, items: Sequence[int]) -> list[PreparedEntry | Exception]:
        self.batches.append(list(items))
        made: list[PreparedEntry | Exception] = [
            InvalidInput(f"item {n} refused") if n < 0 else _entry(f"{self.label}-{n}") for n in items
        ]
        return made[:-1] if self.short else made


def _entry(subject: str) -> PreparedEntry:
    return PreparedEntry.build(kind="test.pending", subject=subject, principal="p", body={})


def test_each_finisher_gets_its_items_in_one_call_and_the_order_is_kept() -> None:
    """Prepared and pending entries of two finishers, interleaved: one call per finisher, positions unchanged."""
    a, b = _Numbered("a"), _Numbered("b")
    batch: list[Appendable] = [
        PendingEntry(a, 1), _entry("plain-1"), PendingEntry(b, 2), PendingEntry(a, 3), _entry("plain-2")
    ]  # fmt: skip
    assert [e.subject for e in finish_entries(batch) if isinstance(e, PreparedEntry)] == [
        "a-1", "plain-1", "b-2", "a-3", "plain-2"
    ]  # fmt: skip
    assert (a.batches, b.batches) == ([[1, 3]], [[2]])


def test_a_batch_without_pending_entries_is_returned_as_it_is() -> None:
    """No finisher is involved when nothing is pending."""
    batch = [_entry("x"), _entry("y")]
    assert finish_entries(batch) == batch


def test_pending_entries_through_the_log_are_recorded_where_their_caller_put_them(workspace: Workspace) -> None:
    """append_many finishes pending entries before its transaction: receipts follow the caller's order."""
    finisher = _Numbered("n")
    receipts = workspace.log.append_many([_entry("first"), PendingEntry(finisher, 7), _entry("last")])
    subjects = [Entry.parse(workspace.log.entry(r.index).text).subject for r in receipts]
    assert subjects == ["first", "n-7", "last"]


def test_a_finisher_losing_an_entry_fails_the_append_and_writes_nothing(workspace: Workspace) -> None:
    """One entry per item or the batch fails: no entry is recorded without its caller's knowledge."""
    short = _Numbered("s", short=True)
    with pytest.raises(RuntimeError, match="returned 1 entries for 2 items"):
        workspace.log.append_many([PendingEntry(short, 1), _entry("plain"), PendingEntry(short, 2)])
    assert workspace.log.size() == 0


def test_a_refused_item_fails_its_own_append_alone(workspace: Workspace) -> None:
    """A finisher's error in an item's place: that caller gets it, nothing of its request is written, the rest is."""
    finisher = _Numbered("n")
    with pytest.raises(InvalidInput, match="item -1 refused"):
        workspace.log.append_many([_entry("with-the-refused"), PendingEntry(finisher, -1)])
    assert workspace.log.size() == 0  # all or nothing: the prepared entry beside it is not written either
    receipts = workspace.log.append_many([PendingEntry(finisher, 5)])
    assert [Entry.parse(workspace.log.entry(r.index).text).subject for r in receipts] == ["n-5"]
