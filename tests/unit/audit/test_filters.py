"""Audit filters: ISO and relative times, and every bad value refused with an error naming it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlwarden.audit.filters import AuditFilter, entry_time, parse_filter, parse_time
from mlwarden.errors import InvalidInput

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
UNITS = {"s": timedelta(seconds=1), "m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1),
         "w": timedelta(weeks=1)}  # fmt: skip


@given(st.integers(min_value=0, max_value=100_000), st.sampled_from(sorted(UNITS)))
def test_relative_times_count_back_from_now(amount: int, unit: str) -> None:
    """``90m``, ``7d``...: exactly that long before now."""
    assert parse_time(f"{amount}{unit}", name="since", now=NOW) == NOW - amount * UNITS[unit]


OFFSETS = st.builds(lambda m: timezone(timedelta(minutes=m)), st.integers(min_value=-23 * 60, max_value=23 * 60))


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9000, 1, 1), timezones=OFFSETS))
def test_iso_times_round_trip_in_utc(moment: datetime) -> None:
    """Any ISO 8601 time with an offset is the same instant, in UTC."""
    parsed = parse_time(moment.isoformat(), name="since")
    assert parsed == moment
    assert parsed.utcoffset() == timedelta(0)


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9000, 1, 1)))
def test_times_without_offset_are_utc_and_match_the_entry_format(moment: datetime) -> None:
    """A naive time is UTC; rendered as the ledger renders entry times (so text order is time order)."""
    parsed = parse_time(moment.isoformat(), name="until")
    assert parsed == moment.replace(tzinfo=UTC)
    assert entry_time(parsed) == moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_z_suffix_and_offsets() -> None:
    """``Z``, ``z`` and ``+02:00`` are understood."""
    assert parse_time("2026-11-26T12:00:00Z", name="since") == NOW
    assert parse_time("2026-11-26t12:00:00z", name="since") == NOW
    assert parse_time("2026-11-26T14:00:00+02:00", name="since") == NOW
    assert parse_time("2026-11-26", name="since") == NOW.replace(hour=0)


@pytest.mark.parametrize("text", ["yesterday", "1y", "", "-1h", "1.5h", "h", "2026-13-01", "1h ago", "１h"])
def test_bad_times_name_the_option(text: str) -> None:
    """Anything else is a clear error naming the option, never a traceback."""
    with pytest.raises(InvalidInput, match=r"^since .* is not a time"):
        parse_time(text, name="since")


def test_relative_time_before_year_one_is_refused() -> None:
    """A duration reaching before year 1 is an input error, not an OverflowError."""
    with pytest.raises(InvalidInput, match="before year 1"):
        parse_time("999999999w", name="since", now=NOW)


@given(st.text(max_size=40))
def test_any_text_is_a_time_or_invalid_input(text: str) -> None:
    """No input makes the parser raise anything but InvalidInput."""
    try:
        parsed = parse_time(text, name="since", now=NOW)
    except InvalidInput:
        return
    assert parsed.tzinfo is not None


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 10_001}, "limit"),
        ({"since_index": -1}, "since_index"),
        ({"kinds": ("Prediction",)}, "kind"),
        ({"status": 42}, "status"),
        ({"principal": ""}, "principal"),
        ({"subject_prefix": "x" * 513}, "subject"),
        ({"decision": "a b"}, "decision"),
        ({"since": NOW, "until": NOW - timedelta(seconds=1)}, "until is before since"),
        ({"since": datetime(2026, 1, 1)}, "time zone"),  # a naive time
    ],
)
def test_bad_filters_are_refused(changes: dict[str, object], needle: str) -> None:
    """Each out-of-range field is refused, naming the field."""
    with pytest.raises(InvalidInput, match=needle):
        AuditFilter(**changes)  # type: ignore[arg-type]


def test_kinds_split_on_commas_and_deduplicate() -> None:
    """``--kind a,b --kind a`` is kinds (a, b); relative since/until use one ``now``."""
    flt = parse_filter(kinds=["access.denied,prediction", "access.denied"], since="1h", until="30m", now=NOW)
    assert flt.kinds == ("access.denied", "prediction")
    assert (flt.since, flt.until) == (NOW - timedelta(hours=1), NOW - timedelta(minutes=30))
    assert flt.after(41).since_index == 42


def test_other_time_zones_are_converted() -> None:
    """A time given in another zone compares as the same instant."""
    tokyo = timezone(timedelta(hours=9))
    assert parse_time(datetime(2026, 11, 26, 21, 0, tzinfo=tokyo).isoformat(), name="since") == NOW.replace(hour=12)
