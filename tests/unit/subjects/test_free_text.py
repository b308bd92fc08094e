"""privacy.free_text: refuse turns away rows whose text holds an identifier; mask lets them through."""

from __future__ import annotations

import pytest

from mlwarden.privacy.errors import IdentifierRefused
from mlwarden.privacy.identifiers import Action
from mlwarden.subjects.free_text import screen_rows


def test_refuse_names_row_and_kind_never_the_value() -> None:
    rows = [{"note": "all fine", "x": 1.0}, ["call me at +44 20 7946 0958", 2.0]]
    with pytest.raises(IdentifierRefused, match=r"row 1: free text holds identifiers \(phone\)") as caught:
        screen_rows(rows, Action.REFUSE)
    assert "7946" not in caught.value.message
    screen_rows(rows, Action.MASK)  # mask: inputs are sealed as given
    screen_rows([{"note": "order 12-2026, version 1.2.3"}], Action.REFUSE)  # look-alikes pass
