"""Personal data in contract reports: pii columns never in clear; identifiers in other text masked."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml

from mlwarden.data.check import check_frame
from mlwarden.data.contracts import parse_contract
from mlwarden.errors import InvalidInput

CONTRACT = """
columns:
  email: {type: string, pii: true, regex: "^[a-z.]+@example[.]org$"}
  note:  {type: string, allowed: [ok]}
  age:   {type: int, min: 0}
"""


def test_pii_column_and_identifiers_are_masked_in_every_report_form() -> None:
    """JSON, table and JUnit quote no pii value and no identifier found in free text; other values stay."""
    frame = pl.DataFrame(
        {
            "email": ["Jane.Doe@Example.org", "ok@example.org"],
            "note": ["call +44 20 7946 0958 or mail jo@corp.example", "fine"],
            "age": [-3, 40],
        }
    )
    report = check_frame(frame.lazy(), parse_contract(CONTRACT))
    assert {b.rule for b in report.broken} == {"regex", "allowed", "min"}
    forms = json.dumps(report.to_json()) + report.table() + report.junit("t")
    for secret in ("Jane.Doe", "7946", "jo@corp.example"):
        assert secret not in forms
    examples = {b.column: b.examples for b in report.broken}
    assert examples["email"] == [{"row": 0, "value": "[PII]"}]
    assert examples["note"][0]["value"] == "call [PHONE] or mail [EMAIL]"
    assert examples["note"][1]["value"] == "fine"
    assert examples["age"] == [{"row": 0, "value": -3}]


def test_pii_flag_must_be_boolean() -> None:
    """`pii: yes-please` is a contract error, not silently true or false."""
    with pytest.raises(InvalidInput, match="pii must be true or false"):
        parse_contract("columns:\n  email: {pii: maybe}\n")
    assert parse_contract("columns:\n  email: {pii: true}\n  x: {}\n").pii_columns == ("email",)


def test_inferred_contract_marks_identifier_columns_pii_and_lists_none(tmp_path: Path) -> None:
    """`data contract infer` never prints a column's identifiers as `allowed` values: it marks the column pii."""
    from mlwarden.data.infer import infer_contract

    path = tmp_path / "people.csv"
    emails = ["ann@corp.example", "bob@corp.example", "cy@corp.example"] * 4
    pl.DataFrame({"email": emails, "city": ["lyon", "nice", "lyon"] * 4, "n": list(range(12))}).write_csv(path)
    text = infer_contract(path)
    assert "corp.example" not in text
    columns = yaml.safe_load(text)["columns"]
    assert columns["email"] == {"type": "string", "nullable": False, "pii": True}
    assert columns["city"]["allowed"] == ["lyon", "nice"]


def test_unreadable_data_error_withholds_the_value(tmp_path: Path) -> None:
    """`data check` on a file whose value Polars cannot parse (past the typed rows) names the column, not the value."""
    from mlwarden.data.check import check_file

    path = tmp_path / "data.csv"
    path.write_text("age\n" + "1\n" * 10_050 + "jane@corp.example\n")
    with pytest.raises(InvalidInput, match=r"could not parse \[value\] as dtype") as caught:
        check_file(parse_contract("columns:\n  age: {type: int}\n"), path)
    assert "corp.example" not in caught.value.message
    assert "'age'" in caught.value.message
