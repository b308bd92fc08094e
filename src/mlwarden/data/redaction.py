"""Values shown in reports, evidence and logs: never a ``pii: true`` column's value, never an identifier in clear.

A contract column marked ``pii: true`` shows as :data:`PII_MASK` wherever a value would be
quoted (broken-rule examples in reports, JUnit, the ledger's ingestion evidence). Text of other
columns is screened with :mod:`mlwarden.privacy.identifiers`: e-mail addresses, phone numbers,
payment cards, IBANs and national ids are replaced by their kind (``[EMAIL]``...).
"""

from __future__ import annotations

from typing import Any

from mlwarden.data.contracts import ColumnRule

PII_MASK = "[PII]"


def shown(value: Any, rule: ColumnRule | None) -> Any:
    """What a report may show of ``value`` from the column ``rule`` describes."""
    if rule is not None and rule.pii:
        return None if value is None else PII_MASK
    if isinstance(value, str) and value:
        from mlwarden.privacy.identifiers import mask

        return mask(value)
    return value
