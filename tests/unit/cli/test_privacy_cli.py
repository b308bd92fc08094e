"""``mlwarden privacy erase`` and ``model predict --subject`` as an operator meets them."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from mlwarden.samples import SampleModel, breast_cancer_model
from tests.unit.cli.conftest import Cli


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleModel:
    return breast_cancer_model(tmp_path_factory.mktemp("privacy-cli") / "art", trees=5)


def _rows(sample: SampleModel, tmp_path: Path, n: int) -> Path:
    frame = pl.read_csv(sample.eval_csv).drop("target").head(n)
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([list(map(float, row)) for row in frame.iter_rows()]))
    return path


def test_predict_with_subjects_then_erase(cli: Cli, sample: SampleModel, tmp_path: Path) -> None:
    """Erasure prints a JSON record (no subject in it), attributed to the OS account; a second one destroys nothing."""
    assert cli("init").code == 0
    assert cli("model", "register", "bc", str(sample.onnx), "--card", str(sample.card)).code == 0
    rows = str(_rows(sample, tmp_path, 2))
    predicted = cli("model", "predict", "bc:1", "--input", rows, "--subject", "cust-9", "--subject", "cust-8")
    assert predicted.code == 0, predicted.err
    first = cli("privacy", "erase", "--subject", "cust-9", "--reason", "gdpr art. 17")
    assert first.code == 0, first.err
    record = json.loads(first.out)
    assert (record["what"], record["keys_destroyed"], record["reason"]) == ("subject", 2, "gdpr art. 17")
    assert "cust-9" not in first.out
    [entry] = cli("ledger", "tail", "-n", "1").json_lines()
    assert (entry["index"], entry["kind"]) == (record["ledger_index"], "privacy.erased")
    assert entry["principal"].startswith("local:")
    assert "cust-9" not in json.dumps(entry)
    second = json.loads(cli("privacy", "erase", "--subject", "cust-9", "--reason", "gdpr art. 17").out)
    assert second["keys_destroyed"] == 0


def test_bad_subjects_and_reason_are_one_line_errors(cli: Cli, sample: SampleModel, tmp_path: Path) -> None:
    """A subject count that does not match the rows, or an empty reason, exits non-zero with one line."""
    assert cli("init").code == 0
    assert cli("model", "register", "bc", str(sample.onnx), "--card", str(sample.card)).code == 0
    rows = str(_rows(sample, tmp_path, 2))
    wrong = cli("model", "predict", "bc:1", "--input", rows, "--subject", "only-one")
    assert wrong.code != 0
    assert "one subject per row" in wrong.err
    assert len(wrong.err.strip().splitlines()) == 1
    empty = cli("privacy", "erase", "--subject", "x", "--reason", " ")
    assert empty.code != 0
    assert "reason" in empty.err
    assert "Traceback" not in empty.err
