"""The fast RFC 8785 encoder equals the reference implementation on any JSON value."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from mlwarden.errors import InvalidInput
from mlwarden.ledger.canonical import canonical_json

# Text without lone surrogates (the reference refuses them too, tested below).
text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=12)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(text, inner, max_size=5), max_leaves=30
)


@settings(max_examples=1000, deadline=None)
@given(values)
def test_matches_reference(value: Any) -> None:
    """Byte-for-byte the same as rfc8785.dumps (key order by UTF-16, ECMAScript numbers, escapes)."""
    assert canonical_json(value) == rfc8785.dumps(value)


@settings(max_examples=500, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_match_reference(value: float) -> None:
    """Every finite double is printed as ECMAScript prints it."""
    assert canonical_json(value) == rfc8785.dumps(value)


def test_rfc8785_published_example() -> None:
    """The number and string examples of RFC 8785 section 3.2.2 come out as published."""
    value = {
        "numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001],
        "string": "\u20ac$\u000f\u000aA'\u0042\u0022\u005c\\\"/",
        "literals": [None, True, False],
    }
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical_json(value).decode() == expected


def test_utf16_key_order() -> None:
    """Keys sort by UTF-16 code units: U+10000 (a surrogate pair) sorts before U+FB33."""
    value = {"\ufb33": 1, "\U00010000": 2, "a": 3}
    assert canonical_json(value) == rfc8785.dumps(value)
    assert canonical_json(value).decode().index("\U00010000") < canonical_json(value).decode().index("\ufb33")


@pytest.mark.parametrize(
    "bad",
    [float("nan"), float("inf"), 2**53, {1: "x"}, {"s": "\ud800"}, object(), {"set": {1}}],
    ids=["nan", "inf", "big-int", "int-key", "lone-surrogate", "object", "set"],
)
def test_non_json_values_are_input_errors(bad: Any) -> None:
    """Anything JSON cannot carry exactly is refused with InvalidInput."""
    with pytest.raises(InvalidInput):
        canonical_json(bad)
