"""Names are matched in full over ASCII: no trailing newline, control or look-alike character makes a second name."""

from __future__ import annotations

import pytest

from mlwarden.errors import InvalidInput
from mlwarden.identity.personal_keys import check_name as check_person
from mlwarden.registry.models import parse_ref
from mlwarden.registry.names import check_alias, check_name

LOOK_ALIKES = {
    "newline": "bc\n",
    "carriage-return": "bc\r",
    "nul": "bc\x00",
    "tab": "bc\t",
    "cyrillic-es": "b\u0441",
    "fullwidth": "\uff42\uff43",
    "zero-width-space": "bc\u200b",
    "arabic-digit": "bc\u0661",
    "line-separator": "bc\u2028",
}


@pytest.mark.parametrize("name", LOOK_ALIKES.values(), ids=LOOK_ALIKES.keys())
def test_look_alike_model_names_stop_name_spoofing(name: str) -> None:
    """``bc`` with a trailing newline, a control or a non-ASCII look-alike is refused, naming the character."""
    with pytest.raises(InvalidInput, match="not valid") as caught:
        check_name(name)
    if name != "bc\t" and name.isascii():
        assert "control character" in caught.value.message
    with pytest.raises(InvalidInput):
        check_name(name, "dataset")
    with pytest.raises(InvalidInput):
        parse_ref(f"{name}:1")


@pytest.mark.parametrize("alias", ["prod\n", "prod\r", "pr\u043ed", "\uff50rod", "prod\x00"])
def test_look_alike_aliases_stop_alias_spoofing(alias: str) -> None:
    """Aliases get the same full match."""
    with pytest.raises(InvalidInput):
        check_alias(alias)


@pytest.mark.parametrize("name", ["alice\n", "al\u0456ce", "alice\x00"])
def test_look_alike_approver_names_are_refused(name: str) -> None:
    """Approver (personal key) names are matched in full too."""
    with pytest.raises(InvalidInput):
        check_person(name)


def test_plain_names_still_pass() -> None:
    """Ordinary names and aliases are unchanged."""
    assert check_name("bc-2.1_x") == "bc-2.1_x"
    assert check_alias("champion") == "champion"
    assert parse_ref("bc:3") == ("bc", 3)
