"""Find common identifiers in free text (e-mail, phone, payment card, IBAN, national ids), mask or refuse.

Candidates come from simple patterns; every candidate is validated by a maintained library:
``email-validator`` (syntax only, no DNS), ``phonenumbers`` (``PhoneNumberMatcher``, numbers
valid for a region), ``python-stdnum`` (Luhn for cards, ISO 13616 IBAN, the national ids of
:mod:`mlwarden.privacy.national_ids`). Overlapping findings keep the longest span.

>>> mask("write to ann@example.org or call +44 20 7946 0958")
'write to [EMAIL] or call [PHONE]'
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from stdnum import iban, luhn

from mlwarden.errors import InvalidInput
from mlwarden.privacy.errors import IdentifierRefused
from mlwarden.privacy.national_ids import NATIONAL_IDS

MAX_TEXT = 20_000


class IdentifierKind(StrEnum):
    """What was found; the mask text is ``[KIND]`` in capitals."""

    EMAIL = "email"
    PHONE = "phone"
    CARD = "card"
    IBAN = "iban"
    NATIONAL_ID = "national_id"


class Action(StrEnum):
    """What the policy does with free text holding identifiers."""

    MASK = "mask"
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True)
class Span:
    """Where an identifier is: ``text[start:end]``, its kind, and which scheme (region, id type)."""

    start: int
    end: int
    kind: IdentifierKind
    scheme: str = ""


@dataclass(frozen=True, slots=True)
class DetectorOptions:
    """Phone regions to parse national-format numbers for (``+``-prefixed ones are found for any), ids to check."""

    phone_regions: tuple[str, ...] = ("US", "GB", "DE", "FR")
    national_ids: tuple[str, ...] = tuple(NATIONAL_IDS)
    max_chars: int = MAX_TEXT

    def __post_init__(self) -> None:
        unknown = sorted(set(self.national_ids) - NATIONAL_IDS.keys())
        if unknown:
            raise InvalidInput(f"unknown national ids {unknown}: known are {sorted(NATIONAL_IDS)}")
        bad = [r for r in self.phone_regions if r not in phonenumbers.SUPPORTED_REGIONS]
        if bad:
            raise InvalidInput(f"unknown phone regions {bad}: use ISO 3166 alpha-2 codes such as US, GB")


DEFAULT_OPTIONS = DetectorOptions()

_EMAIL = re.compile(r"[^\s@<>()\[\]{},;:\"'`|]+@[^\s@<>()\[\]{},;:\"'`|]+")
_CARD = re.compile(r"(?<![\d.,-])\d(?:[ -]?\d){12,18}(?![\d]|[.,-]\d)")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])", re.IGNORECASE)
# Issuer prefixes (ISO/IEC 7812 IIN ranges of the major networks): Luhn alone passes 1 in 10 numbers.
_CARD_ISSUERS = re.compile(r"4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)|3[47]|3(?:0[0-5]|[68])|35|6(?:011|4[4-9]|5)|62")


def _emails(text: str) -> Iterator[Span]:
    for match in _EMAIL.finditer(text):
        candidate = match.group().rstrip(".")
        try:
            validate_email(candidate, check_deliverability=False, allow_display_name=False)
        except EmailNotValidError:
            continue
        yield Span(match.start(), match.start() + len(candidate), IdentifierKind.EMAIL)


def _cards(text: str) -> Iterator[Span]:
    for match in _CARD.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        if 13 <= len(digits) <= 19 and _CARD_ISSUERS.match(digits) and luhn.is_valid(digits):
            yield Span(match.start(), match.end(), IdentifierKind.CARD)


def _ibans(text: str) -> Iterator[Span]:
    for match in _IBAN.finditer(text):
        candidate = match.group()
        while len(candidate.replace(" ", "")) >= 15:  # trailing words may have been swallowed
            if iban.is_valid(candidate):
                yield Span(match.start(), match.start() + len(candidate), IdentifierKind.IBAN, candidate[:2].upper())
                break
            candidate = candidate[:-1].rstrip()


def _phones(text: str, regions: tuple[str, ...]) -> Iterator[Span]:
    for region in regions or (None,):
        for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
            raw = match.raw_string
            start = match.start + len(raw) - len(raw.lstrip())
            end = match.end - (len(raw) - len(raw.rstrip()))
            yield Span(start, end, IdentifierKind.PHONE, phonenumbers.region_code_for_number(match.number) or "")


def _national_ids(text: str, names: tuple[str, ...]) -> Iterator[Span]:
    for name in names:
        scheme = NATIONAL_IDS[name]
        for match in scheme.pattern.finditer(text):
            if scheme.is_valid(match.group()):
                yield Span(match.start(), match.end(), IdentifierKind.NATIONAL_ID, name)


_PRIORITY = {
    IdentifierKind.EMAIL: 0,
    IdentifierKind.IBAN: 1,
    IdentifierKind.CARD: 2,
    IdentifierKind.NATIONAL_ID: 3,
    IdentifierKind.PHONE: 4,
}


def find(text: str, options: DetectorOptions = DEFAULT_OPTIONS) -> list[Span]:
    """Every identifier in ``text``, in order, no two overlapping (the longest, then the likeliest, wins)."""
    if not isinstance(text, str):
        raise InvalidInput("free text must be a string")
    if len(text) > options.max_chars:
        raise InvalidInput(f"free text of {len(text)} characters is above the {options.max_chars} screened")
    found = [
        *_emails(text),
        *_ibans(text),
        *_cards(text),
        *_national_ids(text, options.national_ids),
        *_phones(text, options.phone_regions),
    ]
    chosen: list[Span] = []
    for span in sorted(found, key=lambda s: (s.start - s.end, _PRIORITY[s.kind], s.start)):
        if all(span.end <= other.start or other.end <= span.start for other in chosen):
            chosen.append(span)
    return sorted(chosen, key=lambda s: s.start)


def mask(text: str, options: DetectorOptions = DEFAULT_OPTIONS) -> str:
    """``text`` with each identifier replaced by ``[EMAIL]``, ``[PHONE]``, ``[CARD]``, ``[IBAN]``, ``[NATIONAL_ID]``."""
    out, last = [], 0
    for span in find(text, options):
        out.append(text[last : span.start])
        out.append(f"[{span.kind.value.upper()}]")
        last = span.end
    out.append(text[last:])
    return "".join(out)


def screen(text: str, action: Action, options: DetectorOptions = DEFAULT_OPTIONS) -> str:
    """Apply the policy: ``mask`` returns the masked text; ``refuse`` raises :class:`IdentifierRefused` if any is found.

    The error names the kinds found, never the values.
    """
    if action is Action.MASK:
        return mask(text, options)
    kinds = tuple(sorted({span.kind.value for span in find(text, options)}))
    if kinds:
        raise IdentifierRefused(
            f"free text holds identifiers ({', '.join(kinds)}) and the policy refuses them", kinds=kinds
        )
    return text
