"""The contract engine: every rule becomes a Polars expression; one streaming pass counts failures."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import polars as pl

from mlwarden.data.contracts import ColumnRule, Contract
from mlwarden.data.infer import infer_contract as infer_contract  # re-exported: the CLI's import
from mlwarden.data.redaction import shown, shown_message
from mlwarden.errors import InvalidInput
from mlwarden.registry.datasets import data_format, scan

EXAMPLES = 5
_NUMERIC = {"int": pl.Int64, "float": pl.Float64}


@dataclass(frozen=True, slots=True)
class RuleResult:
    rule: str
    column: str | None
    failing_rows: int
    detail: str
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "column": self.column,
            "failing_rows": self.failing_rows,
            "detail": self.detail,
            "examples": self.examples,
        }


@dataclass(frozen=True, slots=True)
class ContractReport:
    rows: int
    broken: list[RuleResult]
    checked: int

    @property
    def ok(self) -> bool:
        return not self.broken

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "rules_checked": self.checked,
            "broken": [b.to_json() for b in self.broken],
        }

    def table(self) -> str:
        if self.ok:
            return f"contract holds: {self.checked} rules over {self.rows} rows"
        lines = [
            f"contract broken: {len(self.broken)} of {self.checked} rules over {self.rows} rows",
            f"  {'rule':<14} {'column':<20} {'failing':>9}  detail",
        ]
        for b in self.broken:
            lines.append(f"  {b.rule:<14} {b.column or '-':<20} {b.failing_rows:>9}  {b.detail}")
            for ex in b.examples[:3]:
                lines.append(f"  {'':<14} {'':<20} {'':>9}  e.g. row {ex.get('row')}: {ex.get('value')!r}")
        return "\n".join(lines)

    def junit(self, name: str) -> str:
        root = ET.Element("testsuite", name=f"contract {name}", tests=str(self.checked), failures=str(len(self.broken)))
        for b in self.broken:
            case = ET.SubElement(
                root, "testcase", classname="mlwarden.contract", name=f"{b.rule}:{b.column or 'table'}"
            )
            ET.SubElement(case, "failure", message=b.detail).text = json.dumps(b.examples, default=str)
        ET.SubElement(root, "testcase", classname="mlwarden.contract", name="other rules")
        return ET.tostring(root, encoding="unicode", xml_declaration=True)


def _column_checks(rule: ColumnRule, dtype: pl.DataType) -> list[tuple[str, pl.Expr, str]]:
    """(rule name, expression that is true on failing rows, detail)."""
    col = pl.col(rule.name)
    checks: list[tuple[str, pl.Expr, str]] = []
    numeric = col
    if rule.type in _NUMERIC:
        target = _NUMERIC[rule.type]
        numeric = col.cast(target, strict=False)
        checks.append(("type", col.is_not_null() & numeric.is_null(), f"values that are not {rule.type}"))
        if rule.type == "int" and dtype.is_float():
            checks.append(("type", col.is_not_null() & (col != col.floor()), "values that are not whole numbers"))
    elif rule.type == "string" and dtype.is_numeric():
        pass  # numbers are acceptable strings
    elif rule.type == "bool" and dtype != pl.Boolean:
        checks.append(
            (
                "type",
                col.is_not_null() & ~col.cast(pl.String).str.to_lowercase().is_in(["true", "false"]),
                "values that are not true/false",
            )
        )
    if not rule.nullable:
        checks.append(("not_null", col.is_null(), "null values"))
    if rule.minimum is not None:
        checks.append(("min", numeric.cast(pl.Float64, strict=False) < rule.minimum, f"values below {rule.minimum:g}"))
    if rule.maximum is not None:
        checks.append(("max", numeric.cast(pl.Float64, strict=False) > rule.maximum, f"values above {rule.maximum:g}"))
    if rule.allowed is not None:
        allowed = [str(a) for a in rule.allowed]
        checks.append(
            ("allowed", col.is_not_null() & ~col.cast(pl.String).is_in(allowed), f"values outside {allowed[:8]}")
        )
    if rule.regex is not None:
        checks.append(
            (
                "regex",
                col.is_not_null() & ~col.cast(pl.String).str.contains(rule.regex),
                f"values not matching /{rule.regex}/",
            )
        )
    return checks


def check_frame(lazy: pl.LazyFrame, contract: Contract) -> ContractReport:
    """Check a lazy frame; the counting pass streams, examples are fetched only for broken rules."""
    try:
        schema = lazy.collect_schema()
    except pl.exceptions.PolarsError as exc:
        raise InvalidInput(f"data cannot be read: {shown_message(str(exc))}") from exc
    missing = [c.name for c in contract.columns if c.name not in schema] + [
        k for k in contract.primary_key if k not in schema
    ]
    if missing:
        raise InvalidInput(f"contract names column(s) missing from the data: {', '.join(dict.fromkeys(missing))}")
    checks: list[tuple[str, str | None, pl.Expr, str]] = []
    aggregates: list[pl.Expr] = [pl.len().alias("__rows")]
    for rule in contract.columns:
        for name, expr, detail in _column_checks(rule, schema[rule.name]):
            alias = f"__{len(checks)}"
            checks.append((name, rule.name, expr, detail))
            aggregates.append(expr.fill_null(False).sum().alias(alias))
        if rule.unique:
            aggregates.append(
                (pl.col(rule.name).count() - pl.col(rule.name).drop_nulls().n_unique()).alias(f"__u_{rule.name}")
            )
        aggregates.append(pl.col(rule.name).null_count().alias(f"__n_{rule.name}"))
    if contract.primary_key:
        aggregates.append((pl.len() - pl.struct(list(contract.primary_key)).n_unique()).alias("__pk"))
    try:
        totals = lazy.select(aggregates).collect(engine="streaming").row(0, named=True)
    except pl.exceptions.PolarsError as exc:
        raise InvalidInput(f"data cannot be checked: {shown_message(str(exc))}") from exc
    rows = int(totals["__rows"])
    broken: list[RuleResult] = []
    for i, (name, column, expr, detail) in enumerate(checks):
        failing = int(totals[f"__{i}"] or 0)
        if failing:
            rule_of = contract.column(column) if column else None
            broken.append(RuleResult(name, column, failing, detail, _examples(lazy, expr, column, rule_of)))
    for rule in contract.columns:
        if rule.unique and int(totals[f"__u_{rule.name}"]):
            dup = pl.col(rule.name).is_duplicated() & pl.col(rule.name).is_not_null()
            broken.append(
                RuleResult(
                    "unique",
                    rule.name,
                    int(totals[f"__u_{rule.name}"]),
                    "repeated values",
                    _examples(lazy, dup, rule.name, rule),
                )
            )
        limit = rule.max_null_rate if rule.max_null_rate is not None else contract.max_null_rate
        nulls = int(totals[f"__n_{rule.name}"])
        if limit is not None and rows and nulls / rows > limit:
            broken.append(
                RuleResult("max_null_rate", rule.name, nulls, f"null rate {nulls / rows:.3f} above {limit:g}")
            )
    if contract.primary_key and int(totals["__pk"]):
        broken.append(RuleResult("primary_key", ",".join(contract.primary_key), int(totals["__pk"]), "key repeated"))
    if contract.min_rows is not None and rows < contract.min_rows:
        broken.append(RuleResult("rows", None, rows, f"{rows} rows, fewer than {contract.min_rows}"))
    if contract.max_rows is not None and rows > contract.max_rows:
        broken.append(RuleResult("rows", None, rows, f"{rows} rows, more than {contract.max_rows}"))
    checked = (
        len(checks) + sum(r.unique for r in contract.columns) + len(contract.columns) + bool(contract.primary_key) + 1
    )
    return ContractReport(rows, broken, checked)


def _examples(
    lazy: pl.LazyFrame, failing: pl.Expr, column: str | None, rule: ColumnRule | None = None
) -> list[dict[str, Any]]:
    """A few failing rows: their number and the value (masked when personal, see :mod:`mlwarden.data.redaction`)."""
    cols = [pl.col("__row").alias("row")] + ([pl.col(column).alias("value")] if column else [])
    try:
        frame = lazy.with_row_index("__row").filter(failing.fill_null(False)).select(cols).head(EXAMPLES).collect()
    except pl.exceptions.PolarsError:
        return []
    return [
        {
            k: shown(v if isinstance(v, int | float | str | bool) or v is None else str(v), rule) if k == "value" else v
            for k, v in r.items()
        }
        for r in frame.to_dicts()
    ]


def check_file(contract: Contract, path: Path) -> ContractReport:
    """Check a CSV, Parquet or JSON lines file against a contract."""
    fmt = _data_file(path)
    lazy = scan(path, fmt)
    if path.stat().st_size < _in_memory_limit():
        # Comfortably smaller than free memory: parse once, then every pass (counts, examples) is in memory.
        try:
            lazy = lazy.collect().lazy()
        except pl.exceptions.PolarsError as exc:
            raise InvalidInput(f"data file {path} cannot be read as {fmt}: {shown_message(str(exc))}") from exc
    return check_frame(lazy, contract)


def _data_file(path: Path) -> str:
    """The format of a data file a user named; a missing, empty or binary file is an input error."""
    if not path.is_file():
        raise InvalidInput(f"data file {path} does not exist")
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError as exc:
        raise InvalidInput(f"cannot read data file {path}: {exc.strerror or exc}") from exc
    if not head:
        raise InvalidInput(f"data file {path} is empty")
    fmt = data_format(path)
    if fmt != "parquet" and b"\x00" in head:
        raise InvalidInput(f"data file {path} is binary, not {fmt}")
    return fmt


def _in_memory_limit() -> int:
    """A quarter of the memory available now; larger files are streamed."""
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4)
    except (ValueError, OSError):
        return 256 << 20
