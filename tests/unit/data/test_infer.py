"""Inferred contracts accept the data they came from and batches like it, and still catch impossible values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mlwarden.data.check import check_file, infer_contract
from mlwarden.data.contracts import parse_contract
from mlwarden.samples import breast_cancer_model
from tests.support.cli import Cli
from tests.unit.data.conftest import _batch


def _contract_for(path: Path) -> str:
    return infer_contract(path)


def test_inferred_contract_holds_on_its_data_and_held_out_clean_batches(
    split: tuple[Path, pl.DataFrame], tmp_path: Path
) -> None:
    """Reference vs three clean batches drawn from the rest of breast-cancer: no rule breaks."""
    contract = parse_contract(_contract_for(split[0]))
    assert check_file(contract, split[0]).ok
    for seed in range(3):
        rows, path = _batch(split[1], tmp_path, f"clean{seed}.csv", seed)
        rows.write_csv(path)
        report = check_file(contract, path)
        assert report.ok, report.table()
    held_out = tmp_path / "held-out.csv"
    split[1].write_csv(held_out)  # every row the reference did not see, extremes included
    assert check_file(contract, held_out).ok


def test_demo_clean_batch_holds_against_the_contract_of_its_training_data(tmp_path: Path) -> None:
    """The demo's split (train.csv, eval.csv as the clean batch) breaks no rule (it broke 22 of 156)."""
    sample = breast_cancer_model(tmp_path / "art", trees=2)
    contract = parse_contract(infer_contract(sample.train_csv))
    report = check_file(contract, sample.eval_csv)
    assert report.ok, report.table()


@pytest.mark.parametrize(
    ("name", "change", "rule"),
    [
        ("f0", pl.col("f0") * 10, "max"),  # a unit error
        ("f3", -pl.col("f3"), "min"),  # a sign error on a column that is never negative
        ("f5", pl.when(pl.int_range(pl.len()) < 4).then(-999.0).otherwise(pl.col("f5")), "min"),  # a sentinel
    ],
)
def test_inferred_contract_breaks_on_out_of_range_batches(
    split: tuple[Path, pl.DataFrame], tmp_path: Path, name: str, change: pl.Expr, rule: str
) -> None:
    """Unit errors, sign errors and sentinels still break the inferred ranges."""
    contract = parse_contract(_contract_for(split[0]))
    rows, path = _batch(split[1], tmp_path, "bad.csv")
    rows.with_columns(change.alias(name)).write_csv(path)
    report = check_file(contract, path)
    assert any(b.rule == rule and b.column == name for b in report.broken), report.table()


def test_inferred_contract_says_how_it_was_inferred(split: tuple[Path, pl.DataFrame]) -> None:
    """The file's comments give the quantiles and the margin; ranges are rounded outward."""
    text = _contract_for(split[0])
    comments = [line for line in text.splitlines() if line.startswith("#")]
    assert any("q0.001" in line and "q0.999" in line and "span" in line for line in comments)
    reference = pl.read_csv(split[0])
    rule = parse_contract(text).column("f0")
    assert rule is not None
    assert rule.minimum is not None
    assert rule.maximum is not None
    assert rule.minimum <= reference.get_column("f0").min()  # type: ignore[operator]
    assert rule.maximum >= reference.get_column("f0").max()  # type: ignore[operator]
    assert rule.minimum == 0.0  # never negative in the data: no negative bound
    assert rule.maximum == round(rule.maximum, 10)
    assert len(f"{rule.maximum:g}") <= 6


def test_ids_become_keys_small_sets_allowed_and_nulls_tolerated(tmp_path: Path) -> None:
    """id and *_id columns are role: key and unique; a small well-seen set is allowed; nulls get a tolerance."""
    rng = np.random.default_rng(0)
    n = 400
    frame = pl.DataFrame(
        {
            "id": np.arange(1000, 1000 + n),
            "customer_id": [f"c{i:05d}" for i in range(n)],
            "colour": rng.choice(["red", "green", "blue"], n),
            "city": [f"town{i}" for i in range(n)],  # many values: no allowed list
            "rare": ["a"] * (n - 1) + ["b"],  # "b" seen once: other rare values may exist
            "grade": rng.integers(1, 4, n),
            "score": pl.Series(rng.normal(size=n)).scatter(list(range(20)), None),
            "count": rng.integers(0, 1000, n),
        }
    )
    path = tmp_path / "customers.csv"
    frame.write_csv(path)
    contract = parse_contract(infer_contract(path))
    assert contract.key_columns == ("id", "customer_id")
    for key in ("id", "customer_id"):
        rule = contract.column(key)
        assert rule is not None
        assert rule.unique
        assert rule.role == "key"
    assert contract.column("colour").allowed == ("blue", "green", "red")  # type: ignore[union-attr]
    assert contract.column("city").allowed is None  # type: ignore[union-attr]
    assert contract.column("rare").allowed is None  # type: ignore[union-attr]
    assert contract.column("grade").allowed == (1, 2, 3)  # type: ignore[union-attr]
    score = contract.column("score")
    assert score is not None
    assert score.nullable
    assert score.max_null_rate is not None
    assert 0.05 < score.max_null_rate <= 0.15
    counted = contract.column("count")
    assert counted is not None
    assert not counted.unique
    assert counted.minimum == 0
    assert check_file(contract, path).ok
    later = frame.with_columns(pl.col("id") + n, pl.col("count").reverse())  # new ids, same kind of data
    later.write_csv(tmp_path / "later.csv")
    assert check_file(contract, tmp_path / "later.csv").ok


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.csv", ""),
        ("header-only.csv", "a,b\n"),
        ("ragged.csv", "a,b\n1,2\n3,4,5,6\n"),
        ("binary.csv", "\x00\x01\x02"),
        ("missing.csv", None),
    ],
)
def test_cli_infer_on_empty_or_ragged_data_is_a_one_line_error(
    cli: Cli, tmp_path: Path, name: str, content: str | None
) -> None:
    """contract infer on an empty, header-only, ragged, binary or missing file: one line on stderr, exit 2."""
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    result = cli("data", "contract", "infer", str(path), use_home=False)
    assert result.code == 2, (result.out, result.err)
    assert result.err.count("\n") == 1, result.err
    assert "internal error" not in result.err
    assert result.out == ""


def test_contract_role_must_be_known() -> None:
    """role is feature, key or id; anything else names the column."""
    assert parse_contract("columns:\n  user_id: {role: id}\n").key_columns == ("user_id",)
    assert parse_contract("columns:\n  x: {role: feature}\n").key_columns == ()
    with pytest.raises(Exception, match="column x: role must be one of"):
        parse_contract("columns:\n  x: {role: label}\n")
