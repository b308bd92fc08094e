"""check_rows: the all-floats shortcut skips nothing that the full walk would refuse."""

from __future__ import annotations

from typing import Any

import pytest

from mlwarden.api.inputs import check_rows
from mlwarden.errors import ValidationError

NAMES = ["a", "b", "c"]


@pytest.mark.parametrize(
    ("rows", "needle"),
    [
        ([[0.5, 1.5, 2.5], [1.0, 10**400, 2.0]], "row 1: feature 'b'"),
        ([[0.5, 1.5, -(10**309)]], "row 0: feature 'c'"),
        ([{"a": 1.0, "b": 10**400, "c": 0.0}], "row 0: feature 'b'"),
        ([[0.5, [10**400], 1.0]], "row 0: feature 'b'"),
    ],
    ids=["int-in-second-row", "negative-int", "named-row", "nested-list"],
)
def test_integers_beyond_float_range_are_named(rows: Any, needle: str) -> None:
    """An integer too large for a float is refused with its row and feature, whatever the row's shape."""
    with pytest.raises(ValidationError, match=needle):
        check_rows(rows, NAMES)


def test_floats_booleans_and_small_integers_pass() -> None:
    """Plain float rows (the shortcut), booleans and integers within float range are not refused here."""
    check_rows([[0.5, 1e308, float("inf")], [True, 2.0, -0.0]], NAMES)
    check_rows([[1, 2**1000, 3.0]], NAMES)
