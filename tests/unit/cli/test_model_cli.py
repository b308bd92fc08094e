"""model and dataset commands as a user types them."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest

from mlwarden.samples import SampleModel, breast_cancer_model
from tests.unit.cli.conftest import Cli


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleModel:
    return breast_cancer_model(tmp_path_factory.mktemp("cli") / "art", trees=8)


def _rows(sample: SampleModel, tmp_path: Path, named: bool) -> Path:
    header, *lines = sample.eval_csv.read_text().splitlines()
    names = header.split(",")[:-1]
    values = [[float(v) for v in line.split(",")[:-1]] for line in lines[:3]]
    rows = [dict(zip(names, v, strict=True)) for v in values] if named else values
    path = tmp_path / ("named.json" if named else "lists.json")
    path.write_text(json.dumps(rows))
    return path


def test_register_show_lineage_predict(cli: Cli, sample: SampleModel, tmp_path: Path) -> None:
    """The whole registry tour from the command line, with JSON outputs."""
    assert cli("init").code == 0
    ds = cli("dataset", "register", "bc-train", str(sample.train_csv))
    assert ds.code == 0, ds.err
    sha = json.loads(ds.out)["sha256"]
    reg = cli(
        "model", "register", "bc", str(sample.onnx), "--card", str(sample.card), "--dataset", f"bc-train@sha256:{sha}",
        "--code-commit", "0123abcd", "--signature", str(sample.signature),
    )  # fmt: skip
    assert reg.code == 0, reg.err
    out = json.loads(reg.out)
    assert {k: out[k] for k in ("name", "version")} == {"name": "bc", "version": 1}
    assert len(out["sha256"]) == 64
    same = json.loads(cli("model", "register", "bc", str(sample.onnx), "--card", str(sample.card)).out)
    assert same["version"] == 1
    assert cli("model", "register", "bc", str(sample.skops), "--card", str(sample.card), "--parent", "bc:1").code == 0
    shown = json.loads(cli("model", "show", "bc:1").out)
    assert shown["stage"] == "candidate"
    assert shown["lineage"]["datasets"][0]["sha256"] == sha
    tree = cli("model", "lineage", "bc:2").out
    assert "bc:1" in tree
    assert f"sha256:{sha[:16]}" in tree
    assert "0123abcd" in tree
    listed = cli("model", "list").json_lines()
    assert [(r["name"], r["version"]) for r in listed] == [("bc", 2), ("bc", 1)]
    for named in (True, False):
        result = cli("model", "predict", "bc:1", "--input", str(_rows(sample, tmp_path, named)))
        assert result.code == 0, result.err
        prediction = json.loads(result.out)
        assert len(prediction["predictions"]) == len(prediction["decision_ids"]) == 3
    assert cli("ledger", "verify").code == 0


def test_malicious_pickle_is_refused_on_the_command_line(cli: Cli, tmp_path: Path) -> None:
    """A pickle named .onnx: one-line error naming the dangerous import, non-zero exit, recorded."""
    cli("init")
    marker = tmp_path / "PWNED"

    class Evil:
        def __reduce__(self) -> tuple[object, ...]:
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "model.onnx"
    bad.write_bytes(pickle.dumps(Evil(), protocol=2))
    card = tmp_path / "card.md"
    card.write_text("# card\n")
    result = cli("model", "register", "evil", str(bad), "--card", str(card))
    assert result.code != 0
    assert "posix.system" in result.err
    assert result.err.count("\n") == 1
    assert not marker.exists()
    assert cli("ledger", "tail", "-n", "1").json_lines()[0]["kind"] == "model.refused"


def test_bad_prediction_input_is_one_line(cli: Cli, sample: SampleModel, tmp_path: Path) -> None:
    """Malformed JSON, NaN and a missing feature each give one line and exit 2."""
    cli("init")
    cli("model", "register", "bc", str(sample.onnx), "--card", str(sample.card), "--signature", str(sample.signature))
    cases = {"broken.json": "[{", "nan.json": "[[NaN]]", "missing.json": '[{"mean_radius": 1.0}]'}
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text)
        result = cli("model", "predict", "bc", "--input", str(path))
        assert result.code == 2, (name, result.err)
        assert result.err.count("\n") == 1, result.err
    assert cli("model", "predict", "ghost", "--input", str(path)).code == 2


def test_tampered_artifact_is_refused_by_predict(cli: Cli, sample: SampleModel, home: Path, tmp_path: Path) -> None:
    """Bytes changed on disk after registration: predict fails in one line, and the ledger records it."""
    cli("init")
    sha = json.loads(cli("model", "register", "bc", str(sample.onnx), "--card", str(sample.card)).out)["sha256"]
    blob = home / "artifacts" / "sha256" / sha[:2] / sha[2:]
    os.chmod(blob, 0o600)
    data = blob.read_bytes()
    blob.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    result = cli("model", "predict", "bc", "--input", str(_rows(sample, tmp_path, named=False)))
    assert result.code == 1
    assert "changed on disk" in result.err
    assert result.err.count("\n") == 1
    assert cli("ledger", "tail", "-n", "1").json_lines()[0]["kind"] == "model.integrity_failed"
    shown = json.loads(cli("model", "show", "bc").out)
    assert shown["registration_signature"]["alg"] == "ed25519"


def test_aliases(cli: Cli, sample: SampleModel, tmp_path: Path) -> None:
    """model alias points NAME@ALIAS at a version for show and predict; stage names and unknown aliases are refused."""
    cli("init")
    cli("model", "register", "bc", str(sample.onnx), "--card", str(sample.card))
    cli("model", "register", "bc", str(sample.skops), "--card", str(sample.card))
    assert cli("model", "alias", "bc", "champion", "1").code == 0
    assert cli("model", "alias", "bc", "challenger", "2").code == 0
    assert json.loads(cli("model", "show", "bc@champion").out)["version"] == 1
    shown = json.loads(cli("model", "show", "bc@challenger").out)
    assert (shown["version"], shown["aliases"]) == (2, {"challenger": 2})
    assert cli("model", "alias", "bc", "champion", "2").code == 0
    assert json.loads(cli("model", "show", "bc@champion").out)["version"] == 2
    result = cli("model", "predict", "bc@challenger", "--input", str(_rows(sample, tmp_path, named=False)))
    assert json.loads(result.out)["version"] == 2
    assert cli("model", "alias", "bc", "production", "1").code == 2
    assert cli("model", "show", "bc@nope").code == 2
    kinds = [line["kind"] for line in cli("ledger", "tail", "-n", "20").json_lines()]
    assert kinds.count("model.alias_set") == 3
