"""Data contracts: YAML rules per column and per table, parsed into checked types.

```yaml
table:
  rows: {min: 100, max: 10000000}
  primary_key: [id]
  max_null_rate: 0.2
columns:
  id:    {type: int, nullable: false, unique: true, role: key}   # keys are not screened for drift
  age:   {type: float, min: 0, max: 130, max_null_rate: 0.05}
  city:  {type: string, allowed: [paris, lyon], regex: "^[a-z]+$"}
  score: {type: float, max_drift: 0.25}      # PSI against the dataset's reference profile
  email: {type: string, pii: true}           # personal data: never shown in clear in reports or logs
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlwarden.errors import InvalidInput

TYPES = ("int", "float", "string", "bool")
ROLES = ("feature", "key", "id")
"""``key`` and ``id`` (the same): identifiers, checked by the contract, left out of drift and poisoning screening."""
_COLUMN_KEYS = {
    "type",
    "nullable",
    "min",
    "max",
    "allowed",
    "regex",
    "unique",
    "max_null_rate",
    "max_drift",
    "role",
    "pii",
}


@dataclass(frozen=True, slots=True)
class ColumnRule:
    name: str
    type: str | None = None
    nullable: bool = True
    minimum: float | None = None
    maximum: float | None = None
    allowed: tuple[Any, ...] | None = None
    regex: str | None = None
    unique: bool = False
    max_null_rate: float | None = None
    max_drift: float | None = None
    role: str = "feature"
    pii: bool = False
    """Personal data: its values are masked wherever a report, evidence or log would quote them."""

    @property
    def is_key(self) -> bool:
        """An identifier column (``role: key`` or ``role: id``): not a feature to screen."""
        return self.role in ("key", "id")


@dataclass(frozen=True, slots=True)
class Contract:
    columns: tuple[ColumnRule, ...]
    min_rows: int | None = None
    max_rows: int | None = None
    primary_key: tuple[str, ...] = ()
    max_null_rate: float | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def column(self, name: str) -> ColumnRule | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def pii_columns(self) -> tuple[str, ...]:
        """Columns marked ``pii: true``."""
        return tuple(c.name for c in self.columns if c.pii)

    @property
    def key_columns(self) -> tuple[str, ...]:
        """Columns marked ``role: key`` or ``role: id``."""
        return tuple(c.name for c in self.columns if c.is_key)


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{where} must be a number")
    return float(value)


def parse_contract(text: str, *, source: str = "contract") -> Contract:
    """Parse contract YAML; every mistake is an input error naming where it is."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{source} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("columns"), dict) or not raw["columns"]:
        raise InvalidInput(f"{source} needs a `columns` mapping with at least one column")
    columns = []
    for name, spec in raw["columns"].items():
        spec = spec or {}
        where = f"{source}: column {name}"
        if not isinstance(spec, dict):
            raise InvalidInput(f"{where} must be a mapping of rules")
        unknown = set(spec) - _COLUMN_KEYS
        if unknown:
            raise InvalidInput(f"{where}: unknown rule(s) {', '.join(sorted(unknown))}")
        kind = spec.get("type")
        if kind is not None and kind not in TYPES:
            raise InvalidInput(f"{where}: type must be one of {', '.join(TYPES)}")
        regex = spec.get("regex")
        if regex is not None:
            try:
                re.compile(str(regex))
            except re.error as exc:
                raise InvalidInput(f"{where}: regex does not compile: {exc}") from exc
        role = spec.get("role", "feature")
        if role not in ROLES:
            raise InvalidInput(f"{where}: role must be one of {', '.join(ROLES)}")
        allowed = spec.get("allowed")
        if allowed is not None and not isinstance(allowed, list):
            raise InvalidInput(f"{where}: allowed must be a list")
        pii = spec.get("pii", False)
        if not isinstance(pii, bool):
            raise InvalidInput(f"{where}: pii must be true or false")
        columns.append(
            ColumnRule(
                name=str(name),
                type=kind,
                nullable=bool(spec.get("nullable", True)),
                minimum=_number(spec.get("min"), f"{where}: min"),
                maximum=_number(spec.get("max"), f"{where}: max"),
                allowed=tuple(allowed) if allowed is not None else None,
                regex=str(regex) if regex is not None else None,
                unique=bool(spec.get("unique", False)),
                max_null_rate=_number(spec.get("max_null_rate"), f"{where}: max_null_rate"),
                max_drift=_number(spec.get("max_drift"), f"{where}: max_drift"),
                role=str(role),
                pii=pii,
            )
        )
    table = raw.get("table") or {}
    if not isinstance(table, dict):
        raise InvalidInput(f"{source}: table must be a mapping")
    rows = table.get("rows") or {}
    key = table.get("primary_key") or []
    if isinstance(key, str):
        key = [key]
    return Contract(
        tuple(columns),
        int(rows["min"]) if rows.get("min") is not None else None,
        int(rows["max"]) if rows.get("max") is not None else None,
        tuple(str(k) for k in key),
        _number(table.get("max_null_rate"), f"{source}: table max_null_rate"),
        raw,
    )


def load_contract(path: Path) -> Contract:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read contract {path}: {exc}") from exc
    return parse_contract(text, source=path.name)
