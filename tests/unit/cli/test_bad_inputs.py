"""Ordinary bad inputs end in one line naming the problem and exit 2, never "internal error" (issue 10)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlwarden.samples import SampleModel, breast_cancer_model
from tests.unit.cli.conftest import Cli

GATE_POLICY = """
stages:
  production:
    gates: [model_card, performance]
gates:
  performance: {label: target, metrics: {accuracy: {min: 0.5}}}
"""


@dataclass(frozen=True)
class Files:
    """A sample model and a folder of bad files made from it."""

    sample: SampleModel
    binary_card: Path
    binary_csv: Path
    binary_json: Path
    ragged_csv: Path
    empty_csv: Path
    header_only_csv: Path
    latin1_csv: Path
    gate_policy: Path
    contract: Path
    blocked: Path
    """A path under a regular file: nothing can be created there, whoever runs the tests (root too)."""
    missing: Path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    folder = tmp_path_factory.mktemp("bad-inputs")
    sample = breast_cancer_model(folder / "art", trees=4)
    header = sample.eval_csv.read_text().splitlines()[0]
    width = len(header.split(","))
    binary = b"\xff\xfe\x00\x01\x80binary\x00" * 8
    made = Files(
        sample=sample,
        binary_card=folder / "card.md",
        binary_csv=folder / "binary.csv",
        binary_json=folder / "signature.json",
        ragged_csv=folder / "ragged.csv",
        empty_csv=folder / "empty.csv",
        header_only_csv=folder / "header.csv",
        latin1_csv=folder / "latin1.csv",
        gate_policy=folder / "policy.yaml",
        contract=folder / "contract.yaml",
        blocked=folder / "a-file" / "out",
        missing=folder / "missing.pem",
    )
    for path in (made.binary_card, made.binary_csv, made.binary_json):
        path.write_bytes(binary)
    made.ragged_csv.write_text(header + "\n1,2\n" + ",".join(["3"] * (width + 5)) + "\n")
    made.empty_csv.write_bytes(b"")
    made.header_only_csv.write_text(header + "\n")
    made.latin1_csv.write_bytes((header + "\n" + ",".join(["\xe9"] * width) + "\n").encode("latin-1"))
    made.gate_policy.write_text(GATE_POLICY)
    made.contract.write_text("columns:\n  target: {type: int}\n")
    made.blocked.parent.write_text("a regular file, not a folder")
    return made


def _gate(f: Files, *extra: str) -> tuple[str, ...]:
    s = f.sample
    return ("gate", "check", str(s.onnx), "--policy", str(f.gate_policy), "--card", str(s.card), *extra)


def _register(f: Files, *extra: str) -> tuple[str, ...]:
    return ("model", "register", "bc2", str(f.sample.onnx), *extra)


CASES: list[tuple[str, Callable[[Files], tuple[str, ...]], tuple[str, ...]]] = [
    ("binary-model-card", lambda f: _register(f, "--card", str(f.binary_card)), ("card.md", "not UTF-8")),
    (
        "binary-signature-file",
        lambda f: _register(f, "--card", str(f.sample.card), "--signature", str(f.binary_json)),
        ("signature.json", "not UTF-8"),
    ),
    (
        "promote-ragged-eval",
        lambda f: ("model", "promote", "bc", "1", "--to", "staging", "--eval", str(f.ragged_csv)),
        ("evaluation data", "ragged.csv", "cannot be read as csv"),
    ),
    (
        "promote-empty-eval",
        lambda f: ("model", "promote", "bc", "1", "--to", "staging", "--eval", str(f.empty_csv)),
        ("evaluation data", "empty.csv"),
    ),
    (
        "promote-latin1-eval",
        lambda f: ("model", "promote", "bc", "1", "--to", "staging", "--eval", str(f.latin1_csv)),
        ("evaluation data", "latin1.csv"),
    ),
    ("gate-ragged-eval", lambda f: _gate(f, "--eval", str(f.ragged_csv)), ("ragged.csv", "cannot be read as csv")),
    ("gate-empty-eval", lambda f: _gate(f, "--eval", str(f.empty_csv)), ("evaluation data", "empty.csv")),
    ("gate-header-only-eval", lambda f: _gate(f, "--eval", str(f.header_only_csv)), ("header.csv", "no rows")),
    ("gate-binary-card", lambda f: _gate(f, "--card", str(f.binary_card)), ("card.md", "not UTF-8")),
    (
        "gate-unwritable-report-dir",
        lambda f: _gate(f, "--eval", str(f.sample.eval_csv), "--report-dir", str(f.blocked)),
        ("cannot write the gate reports", "a-file/out"),
    ),
    ("infer-empty-csv", lambda f: ("data", "contract", "infer", str(f.empty_csv)), ("empty.csv", "is empty")),
    (
        "infer-ragged-csv",
        lambda f: ("data", "contract", "infer", str(f.ragged_csv)),
        ("ragged.csv", "cannot be read as csv"),
    ),
    ("infer-header-only-csv", lambda f: ("data", "contract", "infer", str(f.header_only_csv)), ("no rows",)),
    ("infer-binary-csv", lambda f: ("data", "contract", "infer", str(f.binary_csv)), ("binary.csv", "binary")),
    ("infer-latin1-csv", lambda f: ("data", "contract", "infer", str(f.latin1_csv)), ("latin1.csv",)),
    (
        "data-check-unwritable-junit",
        lambda f: ("data", "check", str(f.contract), str(f.sample.eval_csv), "--junit", str(f.blocked / "j.xml")),
        ("cannot write the JUnit report", "a-file/out"),
    ),
    ("dataset-register-binary", lambda f: ("dataset", "register", "junk", str(f.binary_csv)), ("binary",)),
    ("ledger-export-unwritable", lambda f: ("ledger", "export", str(f.blocked)), ("cannot write bundle", "a-file")),
    (
        "keys-create-unwritable",
        lambda f: ("keys", "create", "--name", "ann", "--out", str(f.blocked)),
        ("cannot create", "a-file/out"),
    ),
    (
        "certs-issue-unwritable",
        lambda f: ("certs", "issue", "c1", "--spiffe-id", "spiffe://example.org/c1", "--out", str(f.blocked)),
        ("cannot write the certificate", "a-file/out"),
    ),
    (
        "certs-init-unwritable",
        lambda f: ("--home", str(f.blocked), "certs", "init"),
        ("cannot write the development CA", "a-file/out"),
    ),
    (
        "serve-missing-tls-cert",
        lambda f: ("serve", "--tls-cert", str(f.missing), "--tls-key", str(f.sample.card)),
        ("--tls-cert", "missing.pem", "does not exist"),
    ),
    (
        "serve-missing-tls-key",
        lambda f: ("serve", "--tls-cert", "CERT", "--tls-key", str(f.missing)),
        ("--tls-key", "missing.pem", "does not exist"),
    ),
    (
        "serve-tls-cert-not-pem",
        lambda f: ("serve", "--tls-cert", str(f.binary_card), "--tls-key", str(f.binary_card)),
        ("--tls-cert", "cannot be used"),
    ),
    (
        "serve-missing-client-ca",
        lambda f: ("serve", "--tls-cert", "CERT", "--tls-key", "KEY", "--client-ca", str(f.missing)),
        ("--client-ca", "missing.pem", "does not exist"),
    ),
    (
        "token-expiry-overflow",
        lambda f: ("token", "create", "--name", "t", "--scope", "inference:read", "--expires", "999999w"),
        ("999999w", "ten years"),
    ),
]


@pytest.mark.parametrize(("make", "words"), [pytest.param(m, w, id=i) for i, m, w in CASES])
def test_bad_input_is_one_line_and_exit_2(
    cli: Cli, home: Path, files: Files, make: Callable[[Files], tuple[str, ...]], words: tuple[str, ...]
) -> None:
    """Each bad file or path is named in one line on stderr, exit 2; the ledger gains nothing."""
    assert cli("init").code == 0
    registered = cli("model", "register", "bc", str(files.sample.onnx), "--card", str(files.sample.card))
    assert registered.code == 0, registered.err
    assert cli("certs", "init").code == 0
    keys = home / "keys"
    swap = {"CERT": str(keys / "server.pem"), "KEY": str(keys / "server.key")}
    before = cli("ledger", "tail", "-n", "1000").out
    result = cli(*[swap.get(a, a) for a in make(files)])
    assert result.code == 2, result.err
    assert "internal error" not in result.err
    assert result.err.startswith("error: "), result.err
    assert result.err.count("\n") == 1, result.err
    for word in words:
        assert word in result.err
    assert cli("ledger", "tail", "-n", "1000").out == before
