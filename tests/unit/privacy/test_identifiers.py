"""Identifier detection in free text: library-validated positives, look-alike negatives, mask and refuse."""

from __future__ import annotations

import random

import pytest

from mlwarden.errors import InvalidInput
from mlwarden.privacy.errors import IdentifierRefused
from mlwarden.privacy.identifiers import Action, DetectorOptions, IdentifierKind, find, mask, screen
from tests.unit.privacy.identifier_samples import LABELLED, NEGATIVES


def _found(text: str) -> list[tuple[str, str]]:
    return [(s.kind.value, text[s.start : s.end]) for s in find(text)]


@pytest.mark.parametrize(("text", "expected"), LABELLED, ids=[t[:30] for t, _ in LABELLED])
def test_real_format_identifiers_are_found_exactly(text: str, expected: list[tuple[str, str]]) -> None:
    """Each labelled sample yields exactly its identifiers, with their kind and exact span."""
    assert _found(text) == expected


@pytest.mark.parametrize("text", NEGATIVES)
def test_look_alikes_are_not_identifiers(text: str) -> None:
    """Dates, versions, amounts, hashes, invalid check digits: nothing is found."""
    assert _found(text) == []


def test_precision_and_recall_on_the_samples() -> None:
    """Over every sample (positives and negatives) precision and recall are both at least 0.95."""
    true_pos = false_pos = false_neg = 0
    for text, expected in [*LABELLED, *((t, []) for t in NEGATIVES)]:
        found = set(_found(text))
        true_pos += len(found & set(expected))
        false_pos += len(found - set(expected))
        false_neg += len(set(expected) - found)
    precision = true_pos / (true_pos + false_pos)
    recall = true_pos / (true_pos + false_neg)
    assert (precision, recall) >= (0.95, 0.95), f"precision {precision:.3f}, recall {recall:.3f}"


def test_random_digit_strings_failing_luhn_are_not_cards() -> None:
    """500 random 13-19 digit numbers with a wrong Luhn digit, bare or grouped: never a card."""
    rng = random.Random(1234)
    for _ in range(500):
        digits = [rng.choice("3456") + "".join(rng.choice("0123456789") for _ in range(rng.randint(12, 18)))]
        number = digits[0]
        total = sum(int(c) if i % 2 == 0 else sum(divmod(2 * int(c), 10)) for i, c in enumerate(reversed(number)))
        if total % 10 == 0:
            number = number[:-1] + str((int(number[-1]) + 1) % 10)
        grouped = " ".join(number[i : i + 4] for i in range(0, len(number), 4))
        for text in (f"ref {number} end", f"ref {grouped} end"):
            assert IdentifierKind.CARD not in {s.kind for s in find(text)}, text


def test_random_luhn_valid_card_numbers_are_found() -> None:
    """Random Visa-prefixed 16-digit numbers completed with the right Luhn digit are all found as cards."""
    rng = random.Random(99)
    for _ in range(100):
        body = "4" + "".join(rng.choice("0123456789") for _ in range(14))
        for check in "0123456789":
            number = body + check
            total = sum(int(c) if i % 2 == 0 else sum(divmod(2 * int(c), 10)) for i, c in enumerate(reversed(number)))
            if total % 10 == 0:
                break
        assert [s.kind for s in find(f"card {number}.")] == [IdentifierKind.CARD], number


def test_mask_replaces_each_identifier_with_its_kind() -> None:
    """The masked text keeps everything else and names what was removed."""
    text = "Ann (ann@example.org, +44 20 7946 0958) paid with 4111 1111 1111 1111; ssn 536-90-4399"
    assert mask(text) == "Ann ([EMAIL], [PHONE]) paid with [CARD]; ssn [NATIONAL_ID]"
    assert mask(NEGATIVES[0]) == NEGATIVES[0]


def test_refuse_names_the_kinds_never_the_values() -> None:
    """The refuse action raises an input error listing the kinds found, without the identifiers themselves."""
    with pytest.raises(IdentifierRefused) as caught:
        screen("pay 4111111111111111 to ann@example.org", Action.REFUSE)
    assert caught.value.kinds == ("card", "email")
    assert "4111" not in str(caught.value)
    assert "ann@" not in str(caught.value)
    assert screen(NEGATIVES[1], Action.REFUSE) == NEGATIVES[1]
    assert screen("mail ann@example.org", Action.MASK) == "mail [EMAIL]"


def test_phone_regions_decide_national_formats() -> None:
    """A national-format number is found only for its region; a +country number for any region."""
    text = "Berlin 030 901820, London +44 20 7946 0958"
    us_only = DetectorOptions(phone_regions=("US",))
    assert [text[s.start : s.end] for s in find(text, us_only)] == ["+44 20 7946 0958"]
    assert len(find(text, DetectorOptions(phone_regions=("DE",)))) == 2


def test_national_ids_can_be_narrowed() -> None:
    """With only us.ssn enabled, a PESEL is not reported; unknown id names are an input error."""
    text = "ssn 536-90-4399 pesel 44051401359"
    only_ssn = DetectorOptions(national_ids=("us.ssn",))
    assert [s.scheme for s in find(text, only_ssn)] == ["us.ssn"]
    with pytest.raises(InvalidInput, match="unknown national ids"):
        DetectorOptions(national_ids=("xx.nothing",))
    with pytest.raises(InvalidInput, match="unknown phone regions"):
        DetectorOptions(phone_regions=("ZZ",))


def test_text_beyond_the_screening_limit_is_refused() -> None:
    """Untrusted text has a bound: above max_chars it is an input error, not a slow scan."""
    with pytest.raises(InvalidInput, match="above the 100 screened"):
        find("x" * 101, DetectorOptions(max_chars=100))
