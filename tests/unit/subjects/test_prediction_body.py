"""A prediction body rendered around its commitments is byte for byte the canonical JSON of the whole body."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlwarden.errors import InvalidInput
from mlwarden.ledger.canonical import canonical_json
from mlwarden.subjects.prediction_body import RESERVED, PredictionBody

MODEL = {"name": "credit", "version": 3, "sha256": "ab" * 32}
PLACEHOLDER = "\x00mlwarden:commitments\x00"

_text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=12)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
                       max_leaves=8)  # fmt: skip
_keys = _text | st.sampled_from(["access", "latency_ms", "inputs_commitmentz", "outputs", "w", "\ue000", "\U0001f600"])
_extra = st.dictionaries(_keys.filter(lambda k: k not in RESERVED), _values, max_size=5)


def _digests(n: int, seed: str) -> list[bytes]:
    return [hashlib.sha256(f"{seed}{i}".encode()).digest() for i in range(n)]


@settings(max_examples=300, deadline=None)
@given(extra=_extra, rows=st.integers(0, 4))
def test_rendered_body_is_the_canonical_json_of_the_whole_body(extra: dict[str, Any], rows: int) -> None:
    """Any extra members (any keys, nested values): splicing the commitments in equals canonicalising it all."""
    ids = [f"d-{i}" for i in range(rows)]
    inputs, outputs = _digests(rows, "i"), _digests(rows, "o")
    body = PredictionBody.of(MODEL, ids, principal="token:t", extra=extra)
    whole = {"model": "credit", "version": 3, "sha256": "ab" * 32, "decision_ids": ids, "v": 2,
             "inputs_commitments": [d.hex() for d in inputs], "outputs_commitments": [d.hex() for d in outputs],
             **extra}  # fmt: skip
    assert body.render(inputs, outputs) == canonical_json(whole)


@pytest.mark.parametrize(
    "extra",
    [
        {"note": PLACEHOLDER},
        {"nested": {"deep": [1, PLACEHOLDER]}},
        {"quoted": '"' + PLACEHOLDER},
        {PLACEHOLDER: 1},
    ],
)
def test_the_placeholder_in_a_callers_value_is_refused_never_spliced(extra: dict[str, Any]) -> None:
    """A value holding the placeholder (anywhere, even after an escaped quote) cannot move a commitment."""
    with pytest.raises(InvalidInput, match="placeholder"):
        PredictionBody.of(MODEL, ["d-1"], principal="p", extra=extra)


def test_an_entry_takes_exactly_one_commitment_pair_and_row_per_decision() -> None:
    """A sealer bug that lost a row cannot produce an entry committing to fewer rows than it names."""
    body = PredictionBody.of(MODEL, ["d-1", "d-2"], principal="p", extra={})
    with pytest.raises(InvalidInput, match="one commitment pair per row"):
        body.entry(_digests(2, "i"), _digests(1, "o"), [])
