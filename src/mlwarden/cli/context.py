"""What every command shares: resolving the workspace from --home and the environment."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.workspace import Workspace, open_workspace


@dataclass(slots=True)
class CliState:
    """Set by the root callback."""

    settings: Settings
    home: Path | None = None

    def options(self, home: Path | None = None) -> WorkspaceOptions:
        """Workspace options, the command's own --home first."""
        return WorkspaceOptions.from_settings(self.settings, home or self.home)

    def open(self, *, check: bool = True) -> Workspace:
        """Open the workspace (raises a one-line error when there is none)."""
        return open_workspace(self.options(), check=check)


def state(ctx: typer.Context) -> CliState:
    """The CLI state from the click context."""
    obj = ctx.find_root().obj
    if not isinstance(obj, CliState):  # invoked without the root callback (tests of sub-apps)
        obj = CliState(Settings())
        ctx.find_root().obj = obj
    return obj


def print_json(value: Any) -> None:
    """One JSON document on one line."""
    sys.stdout.write(json.dumps(value) + "\n")
