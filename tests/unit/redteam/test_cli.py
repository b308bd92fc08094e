"""``mlwarden redteam`` usage errors: one line and exit 2; reports checked before they are recorded."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from mlwarden.redteam.findings import FindingSeverity
from mlwarden.redteam.run import regressions
from tests.support.cli import Cli
from tests.unit.redteam.reports import finding, report


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _one_line_error(result_err: str) -> None:
    lines = [line for line in result_err.splitlines() if line.strip()]
    assert len(lines) == 1, result_err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result_err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "bc"], "give either --url"),
        (["--model", "bc", "--url", "http://127.0.0.1:9"], "--url needs --token"),
        (["--model", "bc", "--url", "ftp://gw", "--token", "x"], "target url must be http"),
        (["--model", "bc", "--url", "http://127.0.0.1:9", "--token", "@/nonexistent/token"], "cannot read"),
        (["--model", "bc", "--url", "http://127.0.0.1:9", "--token", "x", "--suite", "vibes"], "unknown suite"),
        (["--model", "bc", "--url", "http://127.0.0.1:9", "--token", "x", "--signature", "/nonexistent.json"],
         "signature"),
    ],
    ids=["no-target", "no-token", "bad-url", "missing-token-file", "unknown-suite", "missing-signature"],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(cli: Cli, monkeypatch: pytest.MonkeyPatch, args: list[str],
                                          message: str) -> None:  # fmt: skip
    """Nothing is attacked; the error says what to give."""
    monkeypatch.delenv("MLWARDEN_REDTEAM_TOKEN", raising=False)
    result = cli("redteam", "run", *args, use_home=False)
    assert result.code == 2
    _one_line_error(result.err)
    assert message in result.err


def test_an_unreachable_target_is_exit_2_and_the_token_file_is_read(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token from @FILE gets as far as the network; a closed port is one line, exit 2, no report."""
    token_file = tmp_path / "token"
    token_file.write_text("mlw_0000000000000000_" + "a" * 43 + "\n")
    monkeypatch.delenv("MLWARDEN_REDTEAM_TOKEN", raising=False)
    url = f"http://127.0.0.1:{_closed_port()}"
    result = cli("redteam", "run", "--model", "bc", "--url", url, "--token", f"@{token_file}",
                 "--report-dir", str(tmp_path / "out"), use_home=False)  # fmt: skip
    assert result.code == 2
    _one_line_error(result.err)
    assert "unreachable" in result.err
    assert "a" * 43 not in result.err + result.out
    assert not (tmp_path / "out").exists()


def test_record_refuses_what_is_not_a_report(cli: Cli, tmp_path: Path) -> None:
    """Garbage, another JSON document, and a report about another artifact are refused with exit 2."""
    assert cli("init").code == 0
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something/v1"}))
    stranger = tmp_path / "report.json"
    stranger.write_text(json.dumps({**report().to_json(), "target": {"url": "x", "model": "bc", "version": 1,
                                                                     "sha256": "ab" * 32}}))  # fmt: skip
    for path, message in ((garbage, "not JSON"), (other, "not a red-team report"), (stranger, "bc")):
        result = cli("redteam", "record", str(path))
        assert result.code == 2, result.err
        _one_line_error(result.err)
        assert message in result.err


def test_findings_absent_from_the_baseline_are_regressions() -> None:
    """By finding id: the same finding again is not a regression, a new one is."""
    before = report(finding("a", FindingSeverity.LOW)).to_json()
    now = report(finding("a", FindingSeverity.LOW), finding("b", FindingSeverity.LOW))
    assert regressions(now, before) == ["access.b"]
    assert regressions(report(finding("a", FindingSeverity.LOW)), before) == []
