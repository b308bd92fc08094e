"""Values shown in reports, evidence and logs: never a ``pii: true`` column's value, never an identifier in clear.

A contract column marked ``pii: true`` shows as :data:`PII_MASK` wherever a value would be
quoted (broken-rule examples in reports, JUnit, the ledger's ingestion evidence). Text of other
columns is screened with :mod:`mlwarden.privacy.identifiers`: e-mail addresses, phone numbers,
payment cards, IBANs and national ids are replaced by their kind (``[EMAIL]``...).
"""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Any

from mlwarden.data.contracts import ColumnRule
from mlwarden.errors import InvalidInput

PII_MASK = "[PII]"


def shown(value: Any, rule: ColumnRule | None) -> Any:
    """What a report may show of ``value`` from the column ``rule`` describes."""
    if rule is not None and rule.pii:
        return None if value is None else PII_MASK
    if isinstance(value, str) and value:
        return shown_text(value)
    return value


_QUOTED = re.compile(r"`[^`]*`|'[^']*'|\"[^\"]*\"")


def shown_text(text: str) -> str:
    """Free text as reports and the ledger may show it: identifiers masked (text too long to scan: withheld)."""
    from mlwarden.privacy.identifiers import MAX_TEXT, mask

    return mask(text) if len(text) <= MAX_TEXT else f"[{len(text)} characters withheld]"


def shown_file_name(name: str) -> str:
    """A file name with identifiers in its stem masked (``jane@corp.example.csv`` → ``[EMAIL].csv``)."""
    suffix = "".join(PurePath(name).suffixes[-1:])
    stem = name[: len(name) - len(suffix)] if suffix else name
    return shown_text(stem) + suffix


def shown_message(message: str) -> str:
    """A parser's error message (Polars quotes the offending value): quoted values withheld, identifiers masked.

    Only the first line is kept; column names survive when quoted with their role (``column 'age'``).
    """
    first = message.splitlines()[0] if message else ""
    kept = _QUOTED.sub(lambda m: m.group(0) if _is_column_name(first, m) else VALUE_MASK, first)
    return shown_text(kept)[:300]


VALUE_MASK = "[value]"


def _is_column_name(text: str, match: re.Match[str]) -> bool:
    return text[: match.start()].rstrip().endswith(("column", "column name", "columns", "dtype"))


def refuse_identifiers(text: str, what: str) -> str:
    """``text`` when it holds no identifier; else an input error naming ``what`` and the kinds, never the values."""
    from mlwarden.privacy.identifiers import MAX_TEXT, find

    if len(text) > MAX_TEXT:
        raise InvalidInput(f"{what} is longer than {MAX_TEXT} characters")
    kinds = sorted({span.kind.value for span in find(text)})
    if kinds:
        raise InvalidInput(
            f"{what} holds personal identifiers ({', '.join(kinds)}): it is recorded in the ledger, "
            "which never holds them; say it without them"
        )
    return text
