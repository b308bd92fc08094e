"""The numbers a gate decides on must be finite: a NaN, infinite or missing figure is ``error``, never a pass.

Comparisons with NaN are always false, so ``value < minimum`` lets a NaN through; every
measured figure and every threshold goes through :func:`finite` before it is compared.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from mlwarden.errors import InvalidInput


def finite(name: str, value: object) -> float:
    """``value`` as a float; raise :class:`InvalidInput` naming ``name`` if it is missing, NaN or infinite."""
    if value is None:
        raise InvalidInput(f"{name} is missing")
    if isinstance(value, bool | np.bool_):
        raise InvalidInput(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]  # numbers, numpy scalars and numeric strings
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be a number, got {str(value)[:40]!r}") from exc
    if not math.isfinite(number):
        raise InvalidInput(f"{name} is {number} (not a finite number)")
    return number


def _is_unfit(value: object) -> bool:
    return value is None or (
        isinstance(value, float | np.floating) and not isinstance(value, bool) and not math.isfinite(float(value))
    )


def unfit_figures(values: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the figures in ``values`` (nested mappings too) that are missing, NaN or infinite."""
    found: list[str] = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            found += unfit_figures(value, name + ".")
        elif _is_unfit(value):
            found.append(name)
    return found


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by ``None`` (JSON and the ledger carry neither)."""
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float | np.floating) and not math.isfinite(float(value)):
        return None
    return value
