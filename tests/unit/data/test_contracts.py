"""Contracts: every rule breaks on the rows that break it, with counts and examples; bad input is exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import polars as pl
import pytest

from mlwarden.data.check import check_file, check_frame
from mlwarden.data.contracts import parse_contract
from mlwarden.errors import InvalidInput
from tests.support.cli import Cli

CONTRACT = """
table: {rows: {min: 3, max: 100}, primary_key: [id]}
columns:
  id: {type: int, nullable: false, unique: true}
  age: {type: int, min: 0, max: 130, max_null_rate: 0.5}
  city: {type: string, allowed: [paris, lyon], regex: "^[a-z]+$"}
  score: {type: float, min: 0, max: 1}
"""


def _frame(**overrides: list[object]) -> pl.LazyFrame:
    data: dict[str, list[object]] = {
        "id": [1, 2, 3, 4],
        "age": [30, 40, None, 50],
        "city": ["paris", "lyon", "paris", "lyon"],
        "score": [0.1, 0.2, 0.3, 0.4],
    }
    data.update(overrides)
    return pl.DataFrame(data, strict=False).lazy()


def test_clean_data_holds() -> None:
    """Data that honours every rule: no broken rule."""
    report = check_frame(_frame(), parse_contract(CONTRACT))
    assert report.ok, report.table()
    assert report.rows == 4


@pytest.mark.parametrize(
    ("overrides", "rule", "column", "count"),
    [
        ({"id": [1, 2, 2, 4]}, "unique", "id", 1),
        ({"id": [1, None, 3, 4]}, "not_null", "id", 1),
        ({"age": [30, 400, None, -1]}, "max", "age", 1),
        ({"age": [30, 400, None, -1]}, "min", "age", 1),
        ({"city": ["paris", "rome", "paris", "lyon"]}, "allowed", "city", 1),
        ({"city": ["paris", "Lyon", "paris", "lyon"]}, "regex", "city", 1),
        ({"score": [0.1, 1.5, 2.0, 0.4]}, "max", "score", 2),
        ({"age": [None, None, None, 50]}, "max_null_rate", "age", 3),
        ({"age": ["30", "forty", None, "50"]}, "type", "age", 1),
    ],
)
def test_each_rule_counts_its_failures(overrides: dict[str, list[object]], rule: str, column: str, count: int) -> None:
    """A broken rule is reported with the number of failing rows and example rows."""
    report = check_frame(_frame(**overrides), parse_contract(CONTRACT))
    found = {(b.rule, b.column): b for b in report.broken}
    assert (rule, column) in found, report.table()
    assert found[(rule, column)].failing_rows == count
    if rule not in ("max_null_rate",):
        assert found[(rule, column)].examples


def test_row_count_range() -> None:
    """Too few rows break the table rule."""
    report = check_frame(
        pl.DataFrame({"id": [1], "age": [1], "city": ["paris"], "score": [0.5]}).lazy(), parse_contract(CONTRACT)
    )
    assert [b.rule for b in report.broken] == ["rows"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("columns: {}", "at least one column"),
        ("columns: {a: {type: decimal}}", "type must be"),
        ("columns: {a: {regex: '('}}", "regex does not compile"),
        ("columns: {a: {colour: red}}", "unknown rule"),
        ("columns: [", "not valid YAML"),
        ("columns: {a: {min: high}}", "must be a number"),
    ],
)
def test_bad_contracts_are_input_errors(text: str, needle: str) -> None:
    """Contract mistakes name what is wrong."""
    with pytest.raises(InvalidInput, match=needle):
        parse_contract(text)


def test_contract_naming_a_missing_column_is_an_input_error(tmp_path: Path) -> None:
    """A contract column absent from the data is a usage error, not a broken contract."""
    data = tmp_path / "d.csv"
    data.write_text("id,age\n1,2\n")
    with pytest.raises(InvalidInput, match="missing from the data: city"):
        check_file(parse_contract(CONTRACT), data)


def test_cli_check_and_infer(cli: Cli, tmp_path: Path) -> None:
    """data check exits 0/1/2 and writes JUnit; contract infer round-trips into a contract the data honours."""
    data = tmp_path / "d.csv"
    data.write_text("id,age,city,score\n1,30,paris,0.1\n2,40,lyon,0.2\n3,,paris,0.3\n4,500,nice,0.4\n")
    contract = tmp_path / "c.yaml"
    contract.write_text(CONTRACT)
    broken = cli(
        "data", "check", str(contract), str(data), "--json", "--junit", str(tmp_path / "j.xml"), use_home=False
    )
    assert broken.code == 1
    rules = {(b["rule"], b["column"]) for b in json.loads(broken.out)["broken"]}
    assert {("max", "age"), ("allowed", "city")} <= rules
    assert ET.parse(tmp_path / "j.xml").getroot().get("failures") == str(len(rules))
    inferred = tmp_path / "inferred.yaml"
    inferred.write_text(cli("data", "contract", "infer", str(data), use_home=False).out)
    assert cli("data", "check", str(inferred), str(data), use_home=False).code == 0
    for bad in (tmp_path / "missing.csv", tmp_path / "empty.csv", tmp_path / "bin.csv"):
        if bad.name == "empty.csv":
            bad.write_text("")
        if bad.name == "bin.csv":
            bad.write_bytes(b"\x00\x01\x02binary\x00")
        result = cli("data", "check", str(contract), str(bad), use_home=False)
        assert result.code == 2, (bad.name, result.err)
        assert result.err.count("\n") == 1


def test_streamed_and_in_memory_checks_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files too big for memory are streamed; the report is the same either way."""
    from mlwarden.data import check

    data = tmp_path / "d.csv"
    data.write_text("id,age,city,score\n1,30,paris,0.1\n2,40,lyon,0.2\n2,,paris,0.3\n4,500,nice,0.4\n")
    contract = parse_contract(CONTRACT)
    in_memory = check_file(contract, data).to_json()
    monkeypatch.setattr(check, "_in_memory_limit", lambda: 0)
    assert check_file(contract, data).to_json() == in_memory
