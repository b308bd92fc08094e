"""Pending entries: finished by the group commit's leader, a batch per finisher, in order; a failure writes nothing."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from mlwarden.ledger.entry import Appendable, Entry, PendingEntry, PreparedEntry, finish_entries
from mlwarden.workspace import Workspace


class _Numbered:
    """A finisher that records each batch it was given and numbers its entries."""

    def __init__(self, label: str, *, short: bool = False) -> None:
        self.label = label
        self.short = short
        self.batches: list[list[int]] = []

    def finish(self, items: Sequence[int]) -> list[PreparedEntry]:
        self.batches.append(list(items))
        made = [_entry(f"{self.label}-{n}") for n in items]
        return made[:-1] if self.short else made


def _entry(subject: str) -> PreparedEntry:
    return PreparedEntry.build(kind="test.pending", subject=subject, principal="p", body={})


def test_each_finisher_gets_its_items_in_one_call_and_the_order_is_kept() -> None:
    """Prepared and pending entries of two finishers, interleaved: one call per finisher, positions unchanged."""
    a, b = _Numbered("a"), _Numbered("b")
    batch: list[Appendable] = [
        PendingEntry(a, 1), _entry("plain-1"), PendingEntry(b, 2), PendingEntry(a, 3), _entry("plain-2")
    ]  # fmt: skip
    assert [e.subject for e in finish_entries(batch)] == ["a-1", "plain-1", "b-2", "a-3", "plain-2"]
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
