"""Canonical entries: the fast renderer equals RFC 8785 on the whole object; strict input parsing."""

from __future__ import annotations

import json
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from mlwarden.errors import InvalidInput
from mlwarden.ledger.entry import Entry, PreparedEntry, embedded_index, parse_json_object

json_scalars = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20)
json_floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
json_values = st.recursive(
    json_scalars | json_floats,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
kinds = st.from_regex(r"\A[a-z][a-z0-9_.:-]{0,20}\Z")


@settings(max_examples=300, deadline=None)
@given(
    kind=kinds,
    subject=st.text(min_size=1, max_size=40),
    principal=st.text(min_size=1, max_size=40),
    body=st.dictionaries(st.text(max_size=10), json_values, max_size=6),
    index=st.integers(0, 2**40),
)
def test_render_is_rfc8785_of_the_whole_entry(
    kind: str, subject: str, principal: str, body: dict[str, Any], index: int
) -> None:
    """The concatenating renderer produces exactly the JCS bytes of {index, kind, time, principal, subject, body}."""
    time = "2026-11-25T17:42:11.123456Z"
    prepared = PreparedEntry.build(kind=kind, subject=subject, principal=principal, body=body)
    rendered = prepared.render(index, time)
    expected = rfc8785.dumps(
        {"index": index, "kind": kind, "time": time, "principal": principal, "subject": subject, "body": body}
    )
    assert rendered == expected
    assert embedded_index(rendered) == index
    parsed = Entry.parse(rendered)
    assert (parsed.index, parsed.kind, parsed.subject, parsed.principal) == (index, kind, subject, principal)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"a": NaN}', "NaN"),
        ('{"a": Infinity}', "Infinity"),
        ('{"a": 1, "a": 2}', "twice"),
        ('"just a string"', "must be a JSON object"),
    ],
)
def test_bad_json_is_rejected_with_a_reason(text: str, needle: str) -> None:
    """Malformed or non-object JSON, NaN and duplicate keys are input errors that say what is wrong."""
    with pytest.raises(InvalidInput, match=needle):
        parse_json_object(text)


@pytest.mark.parametrize(
    ("field", "value"),
    [("kind", "Bad Kind"), ("kind", ""), ("subject", ""), ("principal", ""), ("kind", "x" * 65)],
)
def test_bad_fields_are_rejected(field: str, value: str) -> None:
    """Entry fields are validated before anything is recorded."""
    args: dict[str, Any] = {"kind": "review", "subject": "s", "principal": "p", "body": {}}
    args[field] = value
    with pytest.raises(InvalidInput):
        PreparedEntry.build(**args)


def test_integers_beyond_ieee_double_are_rejected() -> None:
    """RFC 8785 cannot represent integers above 2**53 exactly; they are refused, not rounded."""
    with pytest.raises(InvalidInput):
        PreparedEntry.build(kind="k", subject="s", principal="p", body={"n": 2**60})


def test_body_with_nested_index_key_does_not_confuse_the_index_reader() -> None:
    """A body containing its own "index" key never shadows the entry's index."""
    body = {"index": 999, "nested": {"index": 5, "x": ',"index":7,'}}
    rendered = PreparedEntry.build(kind="k", subject="s", principal="p", body=body).render(42, "t")
    assert embedded_index(rendered) == 42
    assert json.loads(rendered)["body"] == body
