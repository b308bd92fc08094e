"""``mlwarden data``: contracts for CI (check, infer)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mlwarden.data.check import check_file, infer_contract
from mlwarden.data.contracts import load_contract

app = typer.Typer(help="Data contracts, screening and quarantine.", no_args_is_help=True)
contract_app = typer.Typer(help="Contracts.", no_args_is_help=True)
app.add_typer(contract_app, name="contract")


@app.command("check")
def check(
    contract: Annotated[Path, typer.Argument(help="Contract YAML.")],
    data: Annotated[Path, typer.Argument(help="CSV, Parquet or JSON lines.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    junit: Annotated[Path | None, typer.Option("--junit", help="Also write JUnit XML here.")] = None,
) -> None:
    """Check DATA against CONTRACT: exit 0 when it holds, 1 when broken, 2 on bad input."""
    report = check_file(load_contract(contract), data)
    typer.echo(json.dumps(report.to_json()) if as_json else report.table())
    if junit is not None:
        junit.write_text(report.junit(data.name), encoding="utf-8")
    if not report.ok:
        raise typer.Exit(1)


@contract_app.command("infer")
def infer(data: Annotated[Path, typer.Argument(help="CSV, Parquet or JSON lines.")]) -> None:
    """Print a starting contract inferred from DATA (types, nullability, ranges, small category sets)."""
    typer.echo(infer_contract(data), nl=False)
