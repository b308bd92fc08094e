"""``mlwarden privacy erase`` and ``model predict --subject`` as an operator meets them."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

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


def _verify(cli: Cli) -> tuple[int, dict[str, Any]]:
    result = cli("ledger", "verify", "--json")
    report: dict[str, Any] = json.loads(result.out)
    return result.code, report


def _db(home: Path) -> sqlite3.Connection:
    return sqlite3.connect(home / "mlwarden.db", isolation_level=None)


@pytest.fixture
def recorded(cli: Cli, sample: SampleModel, tmp_path: Path) -> dict[str, Any]:
    """Two predictions: two rows of subjects cust-1/cust-2, then one row without subject."""
    assert cli("init").code == 0
    assert cli("model", "register", "bc", str(sample.onnx), "--card", str(sample.card)).code == 0
    rows = str(_rows(sample, tmp_path, 2))
    subjects = cli("model", "predict", "bc:1", "--input", rows, "--subject", "cust-1", "--subject", "cust-2")
    (tmp_path / "one.json").write_text(json.dumps(json.loads(Path(rows).read_text())[:1]))
    own = cli("model", "predict", "bc:1", "--input", str(tmp_path / "one.json"))
    assert subjects.code == own.code == 0
    return {"subjects": json.loads(subjects.out), "own": json.loads(own.out)}


def test_verify_reports_erasure_and_stays_intact(cli: Cli, recorded: dict[str, Any]) -> None:
    """After erasing a subject, verify exits 0: erased payloads counted against the erasure entry's index."""
    code, before = _verify(cli)
    assert code == 0, before
    assert before["payloads"] == {"verified": 6, "erased": 0, "absent": 0, "tampered": [], "erased_by": {}}
    erased = json.loads(cli("privacy", "erase", "--subject", "cust-1", "--reason", "request").out)
    code, after = _verify(cli)
    assert code == 0, after
    assert after["payloads"]["verified"] == 4
    assert after["payloads"]["erased"] == 2
    assert after["payloads"]["erased_by"] == {str(erased["ledger_index"]): 2}
    text = cli("ledger", "verify")
    assert text.code == 0
    assert f"2 erased (2 by the erasure at index {erased['ledger_index']})" in text.out


def test_verify_names_the_index_of_an_altered_ciphertext(cli: Cli, home: Path, recorded: dict[str, Any]) -> None:
    """One flipped ciphertext byte: exit 1, the prediction's ledger index named."""
    decision = recorded["subjects"]["decision_ids"][1]
    with _db(home) as db:
        (ct,) = db.execute("SELECT inputs FROM privacy_rows WHERE decision_id = ?", (decision,)).fetchone()
        db.execute(
            "UPDATE privacy_rows SET inputs = ? WHERE decision_id = ?",
            (ct[:20] + bytes([ct[20] ^ 1]) + ct[21:], decision),
        )
    code, report = _verify(cli)
    assert code == 1
    [problem] = report["payloads"]["tampered"]
    assert problem["index"] == recorded["subjects"]["ledger_index"]
    assert "fails authentication" in problem["problem"]


def test_verify_catches_swapped_payloads_and_fake_erasure(cli: Cli, home: Path, recorded: dict[str, Any]) -> None:
    """A payload row moved to another decision fails; a row marked erased with no erasure entry fails."""
    first, second = recorded["subjects"]["decision_ids"]
    own = recorded["own"]["decision_ids"][0]
    with _db(home) as db:
        db.execute("UPDATE privacy_rows SET erasure_id = 'fake', share = NULL WHERE decision_id = ?", (own,))
        db.execute("DELETE FROM privacy_rows WHERE decision_id = ?", (second,))
        db.execute("UPDATE privacy_rows SET decision_id = ? WHERE decision_id = ?", (second, first))
    code, report = _verify(cli)
    assert code == 1
    problems = {(p["index"], p["problem"].split(":")[0].split(" is ")[0]) for p in report["payloads"]["tampered"]}
    subjects_index, own_index = recorded["subjects"]["ledger_index"], recorded["own"]["ledger_index"]
    assert {i for i, _ in problems} == {subjects_index, own_index}
    texts = " | ".join(p["problem"] for p in report["payloads"]["tampered"])
    assert "no erasure entry covers" in texts
    assert "payload row missing" in texts  # the first decision's row was moved away
    assert "fails authentication" in texts  # ... and fails where it was moved to


def test_verify_names_the_index_of_an_altered_commitment(cli: Cli, home: Path, recorded: dict[str, Any]) -> None:
    """A commitment rewritten in the stored entry (to match a forged payload) breaks the leaf: exit 1 at its index."""
    index = recorded["own"]["ledger_index"]
    with _db(home) as db:
        (text,) = db.execute("SELECT entry FROM ledger_entries WHERE idx = ?", (index,)).fetchone()
        body = json.loads(text)["body"]
        old = body["inputs_commitments"][0]
        db.execute("UPDATE ledger_entries SET entry = ? WHERE idx = ?", (text.replace(old, "0" * 64), index))
    code, report = _verify(cli)
    assert code == 1
    assert report["index"] == index


def test_subject_export_verifies_offline(cli: Cli, home: Path, tmp_path: Path, recorded: dict[str, Any]) -> None:
    """The export holds the subject's decision with inputs and outputs; it verifies with the pinned key only;
    a changed input, a foreign key, or a stale proof fail; after erasure nothing is exported."""
    out = tmp_path / "cust-1.json"
    written = cli("privacy", "export", "--subject", "cust-1", "--out", str(out))
    assert written.code == 0, written.err
    assert (out.stat().st_mode & 0o777) == 0o600
    document = json.loads(out.read_text())
    [decision] = document["decisions"]
    assert decision["decision_id"] == recorded["subjects"]["decision_ids"][0]
    assert decision["outputs"] == recorded["subjects"]["predictions"][0]
    shutil.move(str(home), str(tmp_path / "elsewhere"))  # offline: no workspace at all
    pub = str(tmp_path / "elsewhere" / "keys" / "ledger.pub")
    checked = cli("privacy", "verify-export", str(out), "--public-key", pub, use_home=False)
    assert checked.code == 0, checked.err
    assert json.loads(checked.out)["decisions"] == 1
    decision["inputs"][0] += 1.0
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(document))
    bad = cli("privacy", "verify-export", str(forged), "--key-fingerprint", json.loads(checked.out)["key_fingerprint"],
              use_home=False)  # fmt: skip
    assert bad.code != 0
    assert f"entry {decision['ledger_index']}: the inputs of decision" in bad.err
    stranger = tmp_path / "stranger"
    assert cli("--home", str(stranger), "init", use_home=False).code == 0
    foreign = cli("privacy", "verify-export", str(out), "--public-key", str(stranger / "keys" / "ledger.pub"),
                  use_home=False)  # fmt: skip
    assert foreign.code != 0
    assert "not the pinned" in foreign.err
    shutil.move(str(tmp_path / "elsewhere"), str(home))
    assert cli("privacy", "erase", "--subject", "cust-1", "--reason", "request").code == 0
    after = json.loads(cli("privacy", "export", "--subject", "cust-1").out)
    assert after["decisions"] == []


def test_retention_now(cli: Cli, home: Path, recorded: dict[str, Any]) -> None:
    """Without a retention limit it is a one-line error; with one, nothing of today expires and nothing is recorded."""
    before = cli("ledger", "tail", "-n", "1").json_lines()[0]["index"]
    unset = cli("privacy", "retention", "--now")
    assert unset.code != 0
    assert "sets no privacy.inputs_retention_days" in unset.err
    assert cli("privacy", "retention").code != 0
    with (home / "policy.yaml").open("a", encoding="utf-8") as policy:
        policy.write("\nprivacy:\n  inputs_retention_days: 30\n")
    applied = cli("privacy", "retention", "--now")
    assert applied.code == 0, applied.err
    assert json.loads(applied.out) == {"inputs_retention_days": 30, "keys_destroyed": 0}
    assert cli("ledger", "tail", "-n", "1").json_lines()[0]["index"] == before


def test_erasure_is_attributed_to_the_os_account_not_the_environment(
    cli: Cli, sample: SampleModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``USER``/``LOGNAME`` claiming someone else change nothing: the erasure names the process's real account."""
    import os
    import pwd

    assert cli("init").code == 0
    monkeypatch.setenv("USER", "mallory")
    monkeypatch.setenv("LOGNAME", "mallory")
    erased = cli("privacy", "erase", "--subject", "cust-1", "--reason", "request")
    assert erased.code == 0, erased.err
    [entry] = cli("ledger", "tail", "-n", "1").json_lines()
    assert entry["kind"] == "privacy.erased"
    assert entry["principal"] == f"local:{pwd.getpwuid(os.getuid()).pw_name}"
    assert "mallory" not in json.dumps(entry)
