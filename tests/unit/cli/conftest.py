"""Run the CLI in-process, as a user would type it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlwarden.cli.main import main


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


Cli = Callable[..., Result]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "ws"


@pytest.fixture
def cli(home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``cli("ledger", "tail")`` runs ``mlwarden --home HOME ledger tail`` and captures its output."""
    monkeypatch.delenv("MLWARDEN_DATABASE_URL", raising=False)

    def run(*args: str, use_home: bool = True) -> Result:
        argv = (["--home", str(home)] if use_home else []) + list(args)
        code = main(argv)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
