"""``mlwarden init``: create the workspace and say where everything is."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlwarden.cli.context import print_json, state
from mlwarden.workspace import init_workspace


def init(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option("--home", help="Workspace folder (default: $MLWARDEN_HOME, else ./.mlwarden)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the locations as JSON.")] = False,
) -> None:
    """Create the workspace (database, migrations, ledger signing key). Safe to run again."""
    info = init_workspace(state(ctx).options(home))
    if as_json:
        print_json(info)
        return
    typer.echo("mlwarden workspace ready")
    width = max(len(k) for k in info)
    for key, value in info.items():
        typer.echo(f"  {key.replace('_', ' '):<{width}}  {value}")
