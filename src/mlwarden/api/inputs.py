"""Numbers a JSON body can hold but a float cannot: ``1e400`` parses to inf, a 400-digit integer overflows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from mlwarden.errors import ValidationError

_FLOAT_MAX = 1.7976931348623157e308


def _fits(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, int):
        return -_FLOAT_MAX <= value <= _FLOAT_MAX  # exact integer comparison: no overflow
    return True


def first_unrepresentable(value: Any, *, floats: bool = True) -> tuple[tuple[int | str, ...], Any] | None:
    """The path to and value of the first number that is not a finite float, depth first; or None.

    With ``floats=False`` only integers too large for a float count (NaN and inf are left to the
    signature validator, which knows which features allow NaN).
    """
    stack: list[tuple[tuple[int | str, ...], Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, dict):
            stack.extend(((*path, k), v) for k, v in reversed(list(item.items())))
        elif isinstance(item, list):
            stack.extend(((*path, i), v) for i, v in reversed(list(enumerate(item))))
        elif not _fits(item) and (floats or not isinstance(item, float)):
            return path, item
    return None


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, float) else f"an integer of {len(str(abs(value)))} digits"


def _plain_rows(rows: Any) -> bool:
    """True for a list of flat rows of floats and booleans (nothing to check), found at C speed."""
    return type(rows) is list and all(type(row) is list and _FLOATISH.issuperset(map(type, row)) for row in rows)


_FLOATISH = frozenset({float, bool})


def check_rows(rows: Any, names: Sequence[str]) -> None:
    """Refuse a prediction row holding an integer beyond float range, naming the row and the feature."""
    if _plain_rows(rows):  # the usual request: every value a float already
        return
    found = first_unrepresentable(rows, floats=False)
    if found is None:
        return
    path, value = found
    row = path[0] if path else 0
    key = path[1] if len(path) > 1 else None
    feature = names[key] if isinstance(key, int) and 0 <= key < len(names) else key
    where = f"row {row}: feature {feature!r}" if feature is not None else f"row {row}"
    raise ValidationError(
        f"{where} is too large for a float (got {_shown(value)})",
        field=str(feature) if feature is not None else "inputs",
    )


def check_value(value: Any, field: str) -> None:
    """Refuse any number outside float range inside ``value`` (the ledger's canonical JSON holds only floats)."""
    found = first_unrepresentable(value)
    if found is not None:
        path, bad = found
        where = field + "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in path)
        raise ValidationError(f"{where} is not a finite number within float range (got {_shown(bad)})", field=field)
