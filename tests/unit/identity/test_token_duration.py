"""Token lifetimes: a clean input error beyond ten years or when malformed, never an OverflowError (issue 10)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mlwarden.errors import InvalidInput
from mlwarden.identity.tokens import MAX_DURATION, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), ("2w", timedelta(weeks=2)), ("3650d", MAX_DURATION)],
)
def test_durations_up_to_ten_years_parse(text: str, expected: timedelta) -> None:
    """Ordinary lifetimes, up to and including the ten-year limit."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["999999w", "999999d", "3651d", "522w", "87601h"])
def test_durations_beyond_ten_years_are_input_errors(text: str) -> None:
    """999999w used to overflow the expiry date; anything past ten years is refused by name."""
    with pytest.raises(InvalidInput, match="ten years"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["0d", "soon", "30", "d", "1y", "\u0663d", "30d\n5d", "1234567s", ""])
def test_malformed_durations_are_input_errors(text: str) -> None:
    """Zero, missing units, non-ASCII digits and trailing lines are refused."""
    with pytest.raises(InvalidInput, match="must look like"):
        parse_duration(text)
