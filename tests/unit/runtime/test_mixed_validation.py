"""Rows mixing text and numbers: strings only where the model takes text, numbers only where it takes numbers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlwarden.errors import InvalidInput, ValidationError
from mlwarden.runtime.signature import Feature, InputSignature

CITIES = ("lille", "lyon", "nice", "paris")
MIXED = InputSignature(
    (
        Feature("income", "float64", minimum=0),
        Feature("age", "int64", minimum=0, maximum=130),
        Feature("city", "categorical", allowed=CITIES),
        Feature("note", "string", required=False, allow_nan=True),
    ),
    "frame",
)
NUMERIC = InputSignature((Feature("age", "float32"), Feature("income", "float32")))


@pytest.mark.parametrize(
    "rows",
    [
        [[41, "12.5"]],
        [["41", 12.5]],
        [{"age": 41, "income": "12.5"}],
        [[41, "nan"]],
        [[41, "1e3"]],
    ],
)
def test_numeric_strings_are_refused_on_the_fast_path(rows: Any) -> None:
    """`"12.5"` for a numeric feature is a validation error naming the field, never converted (lists or objects)."""
    with pytest.raises(ValidationError) as caught:
        NUMERIC.validate(rows)
    assert caught.value.field in ("age", "income")
    assert "must be a number, got str" in caught.value.message


def test_huge_integers_are_a_validation_error() -> None:
    """An integer too large for a float is refused naming the field, not an overflow."""
    with pytest.raises(ValidationError, match="too large for a float") as caught:
        NUMERIC.validate([[41, 10**400]])
    assert caught.value.field == "income"


@pytest.mark.parametrize(
    ("row", "field", "needle"),
    [
        ({"income": "12.5", "age": 3, "city": "nice"}, "income", "must be a number, got str '12.5'"),
        ({"income": 1.0, "age": 3, "city": 4}, "city", "must be a string, got int"),
        ({"income": 1.0, "age": 3, "city": "rome"}, "city", "'rome' is not a category the model knows"),
        ({"income": 1.0, "age": 3.5, "city": "nice"}, "age", "must be an integer"),
        ({"income": -1.0, "age": 3, "city": "nice"}, "income", "below the minimum"),
        ({"income": 1.0, "age": 3, "city": None}, "city", "is null"),
        ({"income": 1.0, "age": 3, "city": "nice", "note": 7}, "note", "must be a string"),
    ],
)
def test_mixed_rows_name_the_bad_field(row: dict[str, Any], field: str, needle: str) -> None:
    """Each wrong value in a mixed row is a ValidationError naming the row's field."""
    with pytest.raises(ValidationError) as caught:
        MIXED.validate([{"income": 1.0, "age": 1, "city": "lyon"}, row])
    assert caught.value.field == field
    assert needle in caught.value.message
    assert "row 1" in caught.value.message


def test_unknown_categories_pass_when_the_encoder_ignores_them() -> None:
    """With `unknown: ignore` any string is accepted; numbers still are not."""
    sig = InputSignature((Feature("city", "categorical", allowed=CITIES, unknown="ignore"),), "frame")
    assert sig.validate([["rome"]])["city"].tolist() == ["rome"]
    with pytest.raises(ValidationError, match="must be a string"):
        sig.validate([[1]])


def test_signature_round_trips_through_json() -> None:
    """Categories and `unknown` survive storage; older numeric signatures read as before."""
    sig = InputSignature((Feature("c", "categorical", allowed=("a",), unknown="ignore"), Feature("x")), "frame")
    stored = sig.to_json()
    assert stored["features"][0] == {
        "name": "c", "dtype": "categorical", "required": True, "categories": ["a"], "unknown": "ignore",
    }  # fmt: skip
    assert stored["features"][1] == {"name": "x", "dtype": "float32", "required": True}
    assert InputSignature.from_json(stored) == sig


def test_signature_file_narrows_but_never_contradicts() -> None:
    """A file may make a number an integer or a string a category; text for a number (or back) is refused."""
    base = InputSignature((Feature("n", "float64"), Feature("s", "string")), "frame")
    category = {"name": "s", "dtype": "categorical", "categories": ["a", "b"]}
    narrowed = base.narrow({"features": [{"name": "n", "dtype": "integer", "min": 0}, category]})
    assert [(f.dtype, f.allowed) for f in narrowed.features] == [("int64", None), ("categorical", ("a", "b"))]
    with pytest.raises(InvalidInput, match="the model takes float64 values, the signature file says string"):
        base.narrow({"features": [{"name": "n", "dtype": "string"}, {"name": "s"}]})
    with pytest.raises(InvalidInput, match="the signature file says number"):
        base.narrow({"features": [{"name": "n"}, {"name": "s", "dtype": "number"}]})
    with pytest.raises(InvalidInput, match="unknown dtype 'text'"):
        base.narrow({"features": [{"name": "n", "dtype": "text"}, {"name": "s"}]})


def test_signature_file_cannot_add_categories_the_encoder_rejects() -> None:
    """Categories beyond the encoder's are refused when it fails on unknowns; fewer narrow it."""
    base = InputSignature((Feature("city", "categorical", allowed=CITIES),), "frame")
    fewer = base.narrow({"features": [{"name": "town", "categories": ["nice"]}]})
    with pytest.raises(ValidationError, match="'lyon' is not a category"):
        fewer.validate([{"town": "lyon"}])
    with pytest.raises(InvalidInput, match=r"categories \['rome'\] are not ones the model knows"):
        base.narrow({"features": [{"name": "city", "categories": ["nice", "rome"]}]})
    with pytest.raises(InvalidInput, match="unknown must be 'error'"):
        base.narrow({"features": [{"name": "city", "unknown": "ignore"}]})


_numbers = st.floats(0, 1e9, allow_nan=False)
_rows = st.lists(
    st.tuples(_numbers, st.integers(0, 130), st.sampled_from(CITIES), st.none() | st.text(max_size=8)),
    min_size=1,
    max_size=20,
)


@settings(max_examples=150, deadline=None)
@given(_rows)
def test_property_valid_mixed_rows_pass_with_values_kept(rows: list[tuple[float, int, str, str | None]]) -> None:
    """Any valid mixed rows pass, as lists or as objects, with every value kept in its named column."""
    as_lists = [list(r) for r in rows]
    as_dicts = [{"income": i, "age": a, "city": c, "note": n} for i, a, c, n in rows]
    for given_rows in (as_lists, as_dicts):
        out = MIXED.validate(given_rows)
        assert isinstance(out, dict)
        assert list(out) == ["income", "age", "city", "note"]
        assert out["income"].tolist() == [r[0] for r in rows]
        assert out["age"].tolist() == [r[1] for r in rows]
        assert out["city"].tolist() == [r[2] for r in rows]
        notes = zip(out["note"].tolist(), [r[3] for r in rows], strict=True)
        assert all((n is None and v != v) or v == n for v, n in notes)


@settings(max_examples=150, deadline=None)
@given(_rows, st.data())
def test_property_a_string_in_a_numeric_field_is_named(
    rows: list[tuple[float, int, str, str | None]], data: Any
) -> None:
    """Putting the text of a number into any numeric cell of a valid batch fails naming that row and field."""
    at = data.draw(st.integers(0, len(rows) - 1))
    column = data.draw(st.sampled_from([0, 1]))
    as_lists: list[list[Any]] = [list(r) for r in rows]
    as_lists[at][column] = str(as_lists[at][column])
    with pytest.raises(ValidationError) as caught:
        MIXED.validate(as_lists)
    assert caught.value.field == ("income", "age")[column]
    assert f"row {at}:" in caught.value.message


@settings(max_examples=150, deadline=None)
@given(_rows, st.data(), st.text(min_size=1, max_size=8).filter(lambda s: s not in CITIES))
def test_property_an_unknown_category_is_named(
    rows: list[tuple[float, int, str, str | None]], data: Any, unknown: str
) -> None:
    """Any string outside the categories in any row fails naming that row and the feature."""
    at = data.draw(st.integers(0, len(rows) - 1))
    as_lists: list[list[Any]] = [list(r) for r in rows]
    as_lists[at][2] = unknown
    with pytest.raises(ValidationError) as caught:
        MIXED.validate(as_lists)
    assert caught.value.field == "city"
    assert f"row {at}:" in caught.value.message


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=2), min_size=1, max_size=10), st.data())
def test_property_fast_path_never_reads_strings_as_numbers(rows: list[list[float]], data: Any) -> None:
    """On an all-numeric model, turning any one cell into its string form fails naming that field."""
    at = data.draw(st.integers(0, len(rows) - 1))
    column = data.draw(st.sampled_from([0, 1]))
    assert np.array_equal(NUMERIC.validate(rows), np.asarray(rows, dtype=np.float32))  # type: ignore[arg-type]
    rows[at][column] = repr(rows[at][column])
    with pytest.raises(ValidationError) as caught:
        NUMERIC.validate(rows)
    assert caught.value.field == ("age", "income")[column]
