"""Input validation against a model's signature: every bad input is named, good input passes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlwarden.errors import InvalidInput, ValidationError
from mlwarden.runtime.signature import Feature, InputSignature

SIG = InputSignature(
    (
        Feature("age", "float32", minimum=0, maximum=130),
        Feature("income", "float32", minimum=0),
        Feature("children", "int64", minimum=0, maximum=20),
    )
)


def test_list_and_object_rows_give_the_same_matrix() -> None:
    """A row keyed by feature name and the same row in signature order are one input."""
    a = SIG.validate([[41, 52000.5, 2]])
    b = SIG.validate([{"age": 41, "income": 52000.5, "children": 2}])
    assert isinstance(a, np.ndarray)
    assert isinstance(b, np.ndarray)
    assert a.dtype == np.float32
    assert np.array_equal(a, b)
    assert a.shape == (1, 3)


@pytest.mark.parametrize(
    ("rows", "field", "needle"),
    [
        ([{"age": 41, "income": 1.0}], "children", "missing feature 'children'"),
        ([{"age": 41, "income": 1.0, "children": 1, "ssn": "x"}], "ssn", "unknown feature 'ssn'"),
        ([{"age": "41", "income": 1.0, "children": 1}], "age", "must be a number, got str"),
        ([{"age": True, "income": 1.0, "children": 1}], "age", "must be a number, got bool"),
        ([[True, 1.0, 1]], "age", "must be a number, got bool"),
        ([{"age": None, "income": 1.0, "children": 1}], "age", "is null"),
        ([[41, math.nan, 1]], "income", "NaN or infinite"),
        ([[41, math.inf, 1]], "income", "NaN or infinite"),
        ([[200, 1.0, 1]], "age", "above the maximum 130"),
        ([[-1, 1.0, 1]], "age", "below the minimum 0"),
        ([[41, 1.0, 1.5]], "children", "must be an integer"),
        ([[41, 1.0]], "inputs", "expected 3 values"),
        ([], "inputs", "non-empty list"),
        ({"age": 1}, "inputs", "non-empty list"),
        (["row"], "inputs", "must be an object"),
    ],
)
def test_bad_rows_name_the_field(rows: Any, field: str, needle: str) -> None:
    """Each kind of bad input is a ValidationError that names the field and says what is wrong."""
    with pytest.raises(ValidationError) as caught:
        SIG.validate(rows)
    assert caught.value.field == field
    assert needle in caught.value.message


def test_error_names_the_row() -> None:
    """With many rows, the error points at the offending one."""
    rows = [[41, 1.0, 1]] * 5 + [[41, 1.0, -3]]
    with pytest.raises(ValidationError, match="row 5"):
        SIG.validate(rows)


def test_allowed_values_and_optional_features() -> None:
    """Allowed values are enforced; an optional feature may be left out (NaN when allowed)."""
    sig = InputSignature(
        (Feature("grade", "int64", allowed=(1, 2, 3)), Feature("score", required=False, allow_nan=True))
    )
    out = sig.validate([{"grade": 2}])
    assert isinstance(out, np.ndarray)
    assert math.isnan(float(out[0, 1]))
    with pytest.raises(ValidationError, match="not one of the allowed values"):
        sig.validate([{"grade": 4, "score": 1.0}])


def test_narrowing_with_a_signature_file() -> None:
    """A signature file renames features and adds ranges; a wrong feature count is refused."""
    base = InputSignature((Feature("x0"), Feature("x1")))
    narrowed = base.narrow({"features": [{"name": "height", "min": 0}, {"name": "weight", "max": 500}]})
    assert narrowed.names == ["height", "weight"]
    with pytest.raises(ValidationError, match="above the maximum"):
        narrowed.validate([{"height": 1, "weight": 900}])
    with pytest.raises(InvalidInput, match="must list 2 features"):
        base.narrow({"features": [{"name": "only"}]})


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 130), st.floats(0, 1e9), st.integers(0, 20)), min_size=1, max_size=30))
def test_property_valid_rows_pass_unchanged(rows: list[tuple[float, float, int]]) -> None:
    """Any in-range rows pass, as lists or as objects, with values kept (to float32)."""
    as_lists = [list(r) for r in rows]
    as_dicts = [{"age": a, "income": i, "children": c} for a, i, c in rows]
    out = SIG.validate(as_lists)
    assert isinstance(out, np.ndarray)
    assert np.array_equal(out, np.asarray(as_lists, dtype=np.float32))
    assert np.array_equal(out, SIG.validate(as_dicts))  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(
    low=st.floats(-1e6, 1e6),
    width=st.floats(0, 1e6),
    value=st.floats(width=32, allow_nan=True, allow_infinity=True),
)
def test_property_float32_fast_path_agrees_with_float64_bounds(low: float, width: float, value: float) -> None:
    """A float32 batch is accepted exactly when its value lies within the (float64) bounds."""
    high = low + width
    sig = InputSignature((Feature("v", "float32", minimum=low, maximum=high),))
    inside = math.isfinite(value) and low <= value <= high
    batch = np.array([[value]], dtype=np.float32)
    if inside:
        assert sig.validate(batch)[0, 0] == np.float32(value)  # type: ignore[index]
    else:
        with pytest.raises(ValidationError):
            sig.validate(batch)


@pytest.mark.parametrize(
    ("signature", "value"),
    [
        (InputSignature((Feature("x", "float32"),)), 1e300),  # a float32 feature: inf once cast
        (InputSignature((Feature("x", "float32"),)), -3.5e38),
        (InputSignature((Feature("x", "float64"),)), 1e39),  # float64 feature, but the model's tensor is float32
        (InputSignature((Feature("x", "int32"),)), 2.0**31),  # wraps when cast to int32
    ],
)
def test_values_the_model_cannot_hold_are_refused(signature: InputSignature, value: float) -> None:
    """With no declared bound, a value the model's number type cannot hold is refused, never cast to inf or wrapped."""
    for rows in ([[value]], [{"x": value}]):
        with pytest.raises(ValidationError, match="beyond what the model's numbers hold") as caught:
            signature.validate(rows)
        assert caught.value.field == "x"


def test_the_largest_float32_still_passes() -> None:
    """The bound is the type's own limit: its largest finite value is a valid input and stays finite."""
    biggest = float(np.finfo(np.float32).max)
    out = InputSignature((Feature("x", "float32"),)).validate([[biggest], [-biggest]])
    assert isinstance(out, np.ndarray)
    assert np.isfinite(out).all()
