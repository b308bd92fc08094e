"""National identifiers recognised in free text: a candidate shape per number, validated by python-stdnum.

Only numbers whose shape plus check digit (and, where the number encodes one, birth date) make
accidental matches rare are listed; bare 9-digit numbers (NL BSN, US SSN without dashes) and
the UK NHS number (same shape as a US phone number) are left out on purpose.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from stdnum.br import cpf
from stdnum.es import dni, nie
from stdnum.fi import hetu
from stdnum.fr import nir
from stdnum.in_ import aadhaar
from stdnum.it import codicefiscale
from stdnum.pl import pesel
from stdnum.se import personnummer
from stdnum.us import ssn

_START = r"(?<![\w.-])"
_END = r"(?![\w-]|\.\w)"


@dataclass(frozen=True, slots=True)
class NationalId:
    """One national identifier: its ``stdnum`` module name, candidate shape and validator."""

    name: str
    pattern: re.Pattern[str]
    is_valid: Callable[[str], bool]


def _shape(body: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(_START + body + _END, flags)


NATIONAL_IDS: dict[str, NationalId] = {
    n.name: n
    for n in (
        NationalId("us.ssn", _shape(r"\d{3}-\d{2}-\d{4}"), ssn.is_valid),
        NationalId("es.dni", _shape(r"\d{8}-?[A-Z]", re.IGNORECASE), dni.is_valid),
        NationalId("es.nie", _shape(r"[XYZ]-?\d{7}-?[A-Z]", re.IGNORECASE), nie.is_valid),
        NationalId("fr.nir", _shape(r"[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}"), nir.is_valid),
        NationalId(
            "it.codicefiscale",
            _shape(r"[A-Z]{6}[0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]", re.IGNORECASE),
            codicefiscale.is_valid,
        ),
        NationalId("se.personnummer", _shape(r"(?:\d{2})?\d{6}[-+]\d{4}"), personnummer.is_valid),
        NationalId("fi.hetu", _shape(r"\d{6}[-+A-FU-Y]\d{3}[0-9A-Y]"), hetu.is_valid),
        NationalId("pl.pesel", _shape(r"\d{11}"), pesel.is_valid),
        NationalId("br.cpf", _shape(r"\d{3}\.\d{3}\.\d{3}-\d{2}"), cpf.is_valid),
        NationalId("in.aadhaar", _shape(r"[2-9]\d{3} \d{4} \d{4}"), aadhaar.is_valid),
    )
}
"""Every national identifier the detector knows, by name (the default checks all of them)."""
