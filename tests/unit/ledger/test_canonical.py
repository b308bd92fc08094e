"""The fast RFC 8785 encoder equals the reference implementation on any JSON value."""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from mlwarden.errors import InvalidInput
from mlwarden.ledger.canonical import MAX_DEPTH, canonical_json

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


# --- the orjson fast path and its fix-ups (issue 11) -------------------------------------------

# Every double from its bit pattern: every magnitude, subnormals, both signs, both zeros.
any_double = st.integers(0, 2**64 - 1).map(lambda bits: struct.unpack("<d", bits.to_bytes(8, "little"))[0])
finite_double = any_double.filter(math.isfinite)
# Floats around the bounds where orjson and ECMAScript print differently (1e-7, 1e-6, 1e-5, 1e16, 1e21).
decade = st.integers(-9, 23).flatmap(
    lambda e: st.sampled_from([1.0, 1.5, 9.999999999999998, 2.0**-0.5]).map(lambda m: m * 10.0**e)
)
integral = st.integers(-(2**60), 2**60).map(float)
floats_everywhere = finite_double | decade | integral | decade.map(lambda f: -f)
# Keys and strings that look like the float tokens the fast path rewrites, or that upset its
# string detection (quotes, backslashes), or that sort differently by UTF-16 than by code point.
tricky_text = st.lists(
    st.sampled_from(
        [".0", ",", "]", "}", "e+16", "e+20", "e-6", "-0.0", '"', "\\", "\\\\", '\\"', "1", "a", "\n", ":", "[",
         "\ue000", "\uffff", "\ufb33", "\U00010000", "\U0010ffff", "\u20ac"]
    ),
    max_size=6,
).map("".join)  # fmt: skip
tricky_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | floats_everywhere | tricky_text | text,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(tricky_text | text, inner, max_size=6),
    max_leaves=40,
)


@settings(max_examples=3000, deadline=None)
@given(floats_everywhere)
def test_every_magnitude_matches_reference(value: float) -> None:
    """Floats of every magnitude, integral ones and the orjson/ECMAScript boundary decades come out as JCS."""
    assert canonical_json(value) == rfc8785.dumps(value)
    assert canonical_json([value, {"k": value}]) == rfc8785.dumps([value, {"k": value}])


@settings(max_examples=600, deadline=None)
@given(tricky_values)
def test_tricky_values_match_reference(value: Any) -> None:
    """Look-alike tokens inside strings stay untouched; non-BMP keys sort by UTF-16; numbers are fixed."""
    assert canonical_json(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, b"1"), (-0.0, b"0"), (1e-7, b"1e-7"), (1e-6, b"0.000001"), (1.5e-6, b"0.0000015"),
        (1e16, b"10000000000000000"), (1e20, b"100000000000000000000"), (1e21, b"1e+21"),
        ([1001.0, -2.0, 0.0], b"[1001,-2,0]"), ({"a": 1.0, "b": [2.0]}, b'{"a":1,"b":[2]}'),
        ({"s": "v1.0, v2.0]", "f": 3.0}, b'{"f":3,"s":"v1.0, v2.0]"}'),
        ({"s": 'say "1.0," \\', "f": 1e16}, b'{"f":10000000000000000,"s":"say \\"1.0,\\" \\\\"}'),
    ],
)  # fmt: skip
def test_known_numbers_and_look_alikes(value: Any, expected: bytes) -> None:
    """Hand-checked ECMAScript forms; a float-like token inside a string is left as written."""
    assert canonical_json(value) == expected == rfc8785.dumps(value)


@pytest.mark.parametrize(
    "bad",
    [
        {"ok": None, "bad": [1.0, float("nan")]},
        [None, {"x": float("-inf")}],
        {"n": None, "deep": [[[float("inf")]]]},
        {"big": [1, 2**53]},
        {"small": -(2**53)},
        {"k": ["fine", "\udfff"]},
        {"\ud83d": 1},
        [1.5, object()],
    ],
    ids=["nan-beside-null", "neg-inf-beside-null", "deep-inf", "nested-big-int", "small-int", "lone-low-surrogate",
         "lone-surrogate-key", "nested-object"],
)  # fmt: skip
def test_non_json_values_nested_are_refused(bad: Any) -> None:
    """NaN/Infinity next to a null, integers beyond 2**53-1, lone surrogates: refused wherever they sit."""
    with pytest.raises(InvalidInput):
        canonical_json(bad)


def test_nesting_limit_is_the_same_on_both_paths() -> None:
    """254 nested containers are written (as the reference writes them); 255 are refused, also via the slow path."""
    deep: Any = []
    for _ in range(MAX_DEPTH - 1):
        deep = [deep]
    assert canonical_json(deep) == rfc8785.dumps(deep)
    with pytest.raises(InvalidInput, match="nested deeper"):
        canonical_json([deep])
    with pytest.raises(InvalidInput, match="nested deeper"):
        canonical_json({"\ue000": 1, "\U00010000": [deep]})  # the UTF-16 key-order path


def test_float_subclasses_are_floats_and_other_types_are_not() -> None:
    """A numpy float64 (a float subclass) is written as the float; a float32 or a datetime is refused."""
    assert canonical_json({"p": np.float64(1.0), "q": np.float64(0.25)}) == b'{"p":1,"q":0.25}'
    for bad in (np.float32(0.5), datetime(2026, 1, 1, tzinfo=UTC)):
        with pytest.raises(InvalidInput, match="not a JSON value"):
            canonical_json({"v": bad})
