"""Decision ids are RFC 9562 version 7 UUIDs: time-ordered, well-formed, unique."""

from __future__ import annotations

import time
import uuid

from hypothesis import given
from hypothesis import strategies as st

from mlwarden.runtime.decision_ids import decision_ids


@given(st.integers(min_value=0, max_value=64))
def test_ids_are_version_7_with_the_rfc_variant(count: int) -> None:
    ids = decision_ids(count)
    assert len(ids) == count
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122


def test_ids_carry_the_current_time_and_sort_by_it() -> None:
    before = time.time_ns() // 1_000_000
    first = decision_ids(3)
    later: list[str] = []
    while not later or uuid.UUID(later[0]).int >> 80 == uuid.UUID(first[0]).int >> 80:
        later = decision_ids(1)  # until the clock has moved on by a millisecond
    after = time.time_ns() // 1_000_000
    stamps = [uuid.UUID(i).int >> 80 for i in first]
    assert all(before <= s <= after for s in stamps)
    assert max(first) < later[0]  # a later millisecond sorts after, as text too


def test_ids_do_not_repeat() -> None:
    ids = [i for _ in range(200) for i in decision_ids(50)]
    assert len(set(ids)) == len(ids)
    random_parts = {uuid.UUID(i).int & ((1 << 62) - 1) for i in ids}
    assert len(random_parts) == len(ids)  # the 62 low random bits alone already differ
