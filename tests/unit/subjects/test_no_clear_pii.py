"""No personal value in clear outside the sealed payloads: not in reports, logs, problems, ledger or any workspace file.

One quarantined batch carries every kind of planted value: a ``pii: true`` column's values,
and in free text an e-mail, a phone number, a Luhn-valid card, an IBAN and a national id. It is
ingested from the CLI (with an HTML report) and over HTTP; then every byte mlwarden wrote is read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import structlog
from fastapi.testclient import TestClient

from mlwarden.api.app import create_app
from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.data.redaction import shown_file_name, shown_message
from mlwarden.identity.tokens import create_token
from mlwarden.workspace import Workspace, open_workspace
from tests.support.cli import Cli

EMAIL = "jane.doe@corp.example"
PHONE = "+44 20 7946 0958"
CARD = "4111 1111 1111 1111"
IBAN = "GB82 WEST 1234 5698 7654 32"
NATIONAL_ID = "078-05-1120"
NAMES = ["Zelda Quixote", "zelda lowercase", "Omar Wyvernsby"]
PLANTED = (EMAIL, PHONE, CARD, IBAN, NATIONAL_ID, "4111111111111111", "GB82WEST", "Quixote", "Wyvernsby", "zelda")
CONTRACT = """
columns:
  name: {type: string, pii: true, regex: "^[A-Z][a-z]+ [A-Z][a-z]+$"}
  note: {type: string, allowed: [fine]}
  f0: {type: float}
"""


def _frame(rows: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))
    return pl.DataFrame({f"f{i}": x[:, i] for i in range(4)}).with_columns(
        pl.Series("target", (x[:, 0] + x[:, 1] > 0).astype(np.int64))
    )


def _hostile_batch() -> pl.DataFrame:
    """80 rows, 30 of them copies (a duplicate flood), with planted personal values in `name` and `note`."""
    base = _frame(50, 2)
    frame = pl.concat([base, base.head(30)])
    texts = [f"mail {EMAIL}", f"ring {PHONE}", f"card {CARD}", f"iban {IBAN}", f"ssn {NATIONAL_ID}"]
    notes = [texts[i % len(texts)] if i % 2 == 0 else "fine" for i in range(frame.height)]
    names = [NAMES[i % len(NAMES)] for i in range(frame.height)]
    return frame.with_columns(pl.Series("name", names), pl.Series("note", notes))


@pytest.fixture
def registered(cli: Cli, home: Path, tmp_path: Path) -> Iterator[Workspace]:
    """A workspace whose dataset `people` has a contract marking `name` as personal data."""
    assert cli("init").code == 0
    reference, contract = tmp_path / "reference.csv", tmp_path / "contract.yaml"
    _frame(400, 1).with_columns(pl.lit("Ann Smith").alias("name"), pl.lit("fine").alias("note")).write_csv(reference)
    contract.write_text(CONTRACT)
    done = cli("dataset", "register", "people", str(reference), "--label", "target", "--contract", str(contract))
    assert done.code == 0, done.err
    ws = open_workspace(WorkspaceOptions.from_settings(Settings(database_url=None), home))
    try:
        yield ws
    finally:
        ws.close()


def _assert_clean(where: str, data: bytes | str) -> None:
    blob = data.encode() if isinstance(data, str) else data
    for value in PLANTED:
        assert value.encode() not in blob, f"{value!r} written in clear in {where}"


def _post(ws: Workspace, body: bytes, query: str) -> Any:
    token, _ = create_token(ws, name="etl", scopes=["data:write"], principal="admin")
    app = create_app(ws.options, Settings(database_url=None, gc_freeze=False, rate_limit=0))
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {token}", "content-type": "text/csv"}
        return client.post(f"/v1/datasets/people/batches?{query}", content=body, headers=headers)


def test_quarantined_batch_leaves_no_personal_value_anywhere(
    cli: Cli, home: Path, tmp_path: Path, registered: Workspace
) -> None:
    """CLI output, logs, the HTML report, the HTTP answer, every ledger entry and every workspace file are clean."""
    batch = tmp_path / f"{EMAIL}.csv"
    _hostile_batch().write_csv(batch)
    reports = tmp_path / "reports"
    with structlog.testing.capture_logs() as logs:
        result = cli("data", "ingest", "people", str(batch), "--report-dir", str(reports))
        response = _post(registered, batch.read_bytes(), "filename=b.csv&subject_column=name")
    assert result.code == 1, result.err
    outcome = json.loads(result.out)
    assert outcome["status"] == "quarantined"
    assert any(r.startswith("contract: regex on name") for r in outcome["reasons"])
    assert any(r.startswith("duplicate flood") for r in outcome["reasons"])
    assert outcome["sealed"]["withheld_columns"] == ["name"]
    assert outcome["sealed"]["masked_columns"] == ["note"]
    assert response.status_code == 202, response.text
    assert response.json()["sealed"]["subject_rows"] == 80
    _assert_clean("the CLI output", result.out + result.err)
    _assert_clean("the HTTP answer", response.content)
    _assert_clean("the log lines", json.dumps(logs, default=str))
    written = [p for p in reports.rglob("*") if p.is_file()]
    assert [p.suffix for p in written] == [".html"]
    html = written[0].read_text()
    assert "[EMAIL]" in html or "[PHONE]" in html  # the flagged rows are shown, masked
    _assert_clean("the HTML report", html)
    for index, text, _leaf in registered.log.iter_rows():
        _assert_clean(f"ledger entry {index}", bytes(text))
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.name.startswith("mlwarden.db") for p in files)
    for path in files:  # the database, its WAL, every artifact, the detector cache
        _assert_clean(str(path.relative_to(home)), path.read_bytes())


def test_unparseable_value_is_not_quoted_in_the_problem(registered: Workspace) -> None:
    """A value Polars cannot parse (an e-mail past the rows used to infer types) is withheld from the 4xx problem."""
    frame = _frame(10_050, 3).with_columns(pl.col("f0").cast(pl.String), pl.lit("A B").alias("name"))
    frame = frame.with_columns(pl.lit("fine").alias("note"))
    body = frame.write_csv().replace("\n" + frame["f0"][10_020], "\n" + EMAIL, 1).encode()
    with structlog.testing.capture_logs() as logs:
        response = _post(registered, body, "filename=b.csv")
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    detail = response.json()["detail"]
    assert "cannot be read as csv" in detail
    _assert_clean("the problem", response.content)
    _assert_clean("the log lines", json.dumps(logs, default=str))


def test_release_reason_with_an_identifier_is_refused(cli: Cli, tmp_path: Path, registered: Workspace) -> None:
    """A release reason naming someone's e-mail would enter the ledger: refused (exit 2), nothing released."""
    batch = tmp_path / "b.csv"
    _hostile_batch().write_csv(batch)
    outcome = json.loads(cli("data", "ingest", "people", str(batch)).out)
    refused = cli("data", "release", outcome["batch"], "--reason", f"checked with {EMAIL}")
    assert refused.code == 2
    assert "holds personal identifiers (email)" in refused.err
    _assert_clean("the refusal", refused.out + refused.err)
    listed = cli("data", "batches", "--quarantined", "--json").json_lines()
    assert [b["id"] for b in listed] == [outcome["batch"]]


def test_redaction_helpers() -> None:
    """Polars' quoted value is withheld (its dtype and column kept); a file name's identifiers are masked."""
    message = f"could not parse `{EMAIL}` as dtype `i64` at column 'f0' (column number 1)\n\nmore"
    assert shown_message(message) == "could not parse [value] as dtype `i64` at column 'f0' (column number 1)"
    assert shown_file_name(f"{EMAIL}.csv") == "[EMAIL].csv"
    assert shown_file_name("plain.parquet") == "plain.parquet"


def test_refused_prediction_value_quotes_no_identifier() -> None:
    """A text where a number or a known category was expected is quoted in the problem with identifiers masked."""
    from mlwarden.errors import ValidationError
    from mlwarden.runtime.signature import Feature, InputSignature

    signature = InputSignature(
        (Feature("income", "float64"), Feature("city", "categorical", allowed=("paris",))), "frame"
    )
    cases = (({"income": f"call {PHONE}", "city": "paris"}, "income"), ({"income": 1.0, "city": EMAIL}, "city"))
    for row, field in cases:
        with pytest.raises(ValidationError) as caught:
            signature.validate([row])
        assert caught.value.field == field
        _assert_clean("the problem", caught.value.message)
        assert "[PHONE]" in caught.value.message or "[EMAIL]" in caught.value.message


def test_erasure_reason_naming_the_subject_or_an_identifier_is_refused(cli: Cli, registered: Workspace) -> None:
    """The erasure entry must never list erased people: a reason naming the subject or an e-mail is exit 2."""
    size = registered.log.size()
    for reason in ("customer-42 asked", f"request from {EMAIL}", "asked by CUSTOMER-42 by phone"):
        refused = cli("privacy", "erase", "--subject", "customer-42", "--reason", reason)
        assert refused.code == 2, refused.out
        _assert_clean("the refusal", refused.err)
        assert "customer-42" not in refused.err.casefold()
    assert registered.log.size() == size
    assert cli("privacy", "erase", "--subject", "customer-42", "--reason", "gdpr art. 17 request").code == 0
    assert registered.log.size() == size + 1
