"""A bad rules file is one clear error naming the line, at watch start and in ``mlwarden alerts check``."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlwarden.errors import ConfigError
from mlwarden.monitor.alert import Severity
from mlwarden.monitor.rules_file import parse_rules
from tests.support.cli import Cli


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        ("alerts:\n  auth.failure_burst: {threshold: 5\n", 3, "not valid YAML"),
        ("gates: {}\nalerts:\n  auth.failure_bust: {threshold: 5}\n", 3, "unknown rule 'auth.failure_bust'"),
        ("alerts:\n  access.denied_burst:\n    treshold: 5\n", 3, "unknown setting 'treshold'"),
        ("alerts:\n  access.denied_burst:\n    threshold: lots\n", 3, "must be a number"),
        ("alerts:\n  access.denied_burst:\n    severity: urgent\n", 3, "must be one of low, medium"),
        ("alerts:\n  access.denied_burst:\n    enabled: maybe\n", 3, "true or false"),
        (
            "alerts:\n  custom:\n    - id: custom.x\n      kind: feedback\n      threshold: 3\n",
            3,
            "'window' is required",
        ),
        (
            "alerts:\n  custom:\n    - {id: x, kind: feedback, threshold: 3, window: 5}\n",
            3,
            "must look like custom.NAME",
        ),
        ("alerts:\n  custom:\n    - {id: custom.x, kind: a, threshold: 3, window: 5, group: p}\n", 3, "unknown field"),
        ("alerts:\n  sampling: {budget: -1}\n", 2, "zero or more"),
    ],
)
def test_errors_name_the_line(text: str, line: int, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_rules(text)
    assert f"line {line}:" in caught.value.message
    assert says in caught.value.message


def test_settings_are_applied() -> None:
    config = parse_rules("alerts:\n  access.denied_burst: {threshold: 3, window: 10, severity: critical}\n")
    settings = config.builtin["access.denied_burst"]
    assert (settings.threshold, settings.window, settings.severity) == (3, 10, Severity.CRITICAL)
    assert config.builtin["auth.failure_burst"].threshold == 20


def test_alerts_check_is_a_one_line_error(cli: Cli, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("alerts:\n  nope: {}\n")
    result = cli("alerts", "check", "--file", str(policy), use_home=False)
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert "policy.yaml line 2: alerts: unknown rule 'nope'" in result.err


def test_watch_refuses_to_start_on_a_bad_rules_file(cli: Cli, home: Path) -> None:
    assert cli("init").code == 0
    (home / "policy.yaml").write_text((home / "policy.yaml").read_text() + "alerts:\n  custom: 3\n")
    result = cli("watch", "--once")
    assert result.code == 2
    assert "must be a list of rules" in result.err
    assert "line" in result.err
