"""A command refused for its input leaves no state change and no ledger entry behind (issue 10)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlwarden.samples import SampleModel, breast_cancer_model
from tests.unit.cli.conftest import Cli, Result

POLICY = """
stages:
  staging:
    gates: [artifact_safety]
  production:
    gates: [artifact_safety]
"""


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleModel:
    return breast_cancer_model(tmp_path_factory.mktemp("nochange") / "art", trees=4)


def _entries(cli: Cli) -> list[dict[str, object]]:
    result = cli("ledger", "tail", "-n", "100000")
    assert result.code == 0, result.err
    return result.json_lines()


def _registered(cli: Cli, sample: SampleModel, home: Path) -> None:
    assert cli("init").code == 0
    (home / "policy.yaml").write_text(POLICY)
    result = cli("model", "register", "bc", str(sample.onnx), "--card", str(sample.card))
    assert result.code == 0, result.err


def _refused(result: Result, *words: str) -> None:
    code, err = result.code, result.err
    assert code == 2, err
    assert err.startswith("error: "), err
    assert err.count("\n") == 1, err
    for word in words:
        assert word in err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("model", "archive", "bc", "99"), ("bc:99", "not registered")),
        (("model", "promote", "bc", "99", "--to", "staging"), ("bc:99", "not registered")),
        (("model", "promote", "bc", "99", "--to", "production"), ("bc:99", "not registered")),
        (("model", "promote", "nosuch", "1", "--to", "staging"), ("nosuch:1", "not registered")),
        (("model", "promote", "bc", "1", "--to", "nowhere"), ("nowhere", "not one of")),
        (("model", "promote", "bc", "99", "--to", "nowhere"), ("nowhere",)),
        (("model", "approve", "bc:99"), ("bc:99", "not registered")),
        (("model", "alias", "bc", "champion", "99"), ("bc:99", "not registered")),
        (("model", "attach", "bc:99", "--report", "REPORT"), ("bc:99", "not registered")),
    ],
)
def test_refused_model_commands_record_nothing(
    cli: Cli, sample: SampleModel, home: Path, tmp_path: Path, args: tuple[str, ...], words: tuple[str, ...]
) -> None:
    """An unknown version or stage is refused before any gate runs: no gate.run, no entry at all."""
    _registered(cli, sample, home)
    report = tmp_path / "audit.json"
    report.write_text(json.dumps({"dependencies": []}))
    before = _entries(cli)
    _refused(cli(*[str(report) if a == "REPORT" else a for a in args]), *words)
    assert _entries(cli) == before


@pytest.mark.parametrize("stage", ["staging", "candidate"])
def test_promote_refuses_to_take_the_production_version_out_of_service(
    cli: Cli, sample: SampleModel, home: Path, stage: str
) -> None:
    """`promote --to staging` of the production version is refused, recorded nowhere; it stays served."""
    _registered(cli, sample, home)
    promoted = cli("model", "promote", "bc", "1", "--to", "production")
    assert promoted.code == 0, promoted.err
    before = _entries(cli)
    _refused(cli("model", "promote", "bc", "1", "--to", stage), "bc:1 is in production", "model archive bc 1")
    assert _entries(cli) == before
    assert json.loads(cli("model", "show", "bc:1").out)["stage"] == "production"


def test_archive_withdraws_the_production_version_and_says_so(cli: Cli, sample: SampleModel, home: Path) -> None:
    """Archiving is the explicit way to stop serving: allowed, recorded, and said on stderr."""
    _registered(cli, sample, home)
    assert cli("model", "promote", "bc", "1", "--to", "production").code == 0
    archived = cli("model", "archive", "bc", "1")
    assert archived.code == 0, archived.err
    assert "no longer serves bc" in archived.err
    assert json.loads(archived.out)["previous_stage"] == "production"
    assert _entries(cli)[-1]["kind"] == "model.promoted"
    assert cli("ledger", "verify").code == 0


def test_ingest_with_an_unwritable_report_dir_records_nothing_and_a_retry_ingests_once(
    cli: Cli, sample: SampleModel, home: Path, tmp_path: Path
) -> None:
    """The report is written before the batch is recorded: a bad --report-dir fails first; one batch after a retry."""
    assert cli("init").code == 0
    assert cli("dataset", "register", "bc-train", str(sample.train_csv)).code == 0
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    before = _entries(cli)
    _refused(
        cli("data", "ingest", "bc-train", str(sample.train_csv), "--report-dir", str(blocker / "reports")),
        "cannot write the batch report",
        str(blocker / "reports"),
    )
    assert _entries(cli) == before
    reports = tmp_path / "reports"
    retried = cli("data", "ingest", "bc-train", str(sample.train_csv), "--report-dir", str(reports))
    assert retried.code in (0, 1), retried.err
    outcome = json.loads(retried.out)
    batches = [e for e in _entries(cli) if str(e["kind"]).startswith("data.batch_")]
    assert len(batches) == 1
    assert Path(outcome["report"]) == reports / f"batch-{outcome['batch']}.html"
    assert sorted(p.name for p in reports.iterdir()) == [f"batch-{outcome['batch']}.html"]  # no staging left
