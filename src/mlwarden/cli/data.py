"""``mlwarden data``: contracts for CI (check, infer)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mlwarden.cli.context import print_json, state
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


@app.command("ingest")
def ingest(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="Registered dataset (its first version is the reference).")],
    data: Annotated[Path, typer.Argument(help="The batch: CSV, Parquet or JSON lines.")],
    report_dir: Annotated[
        Path | None, typer.Option("--report-dir", help="Write an HTML report (drift chart, flagged rows).")
    ] = None,
) -> None:
    """Contract and screening; prints {batch, status, reasons, flagged_rows}; exit 0 accepted, 1 quarantined, 2 bad."""
    from mlwarden.data.ingest import ingest as run_ingest
    from mlwarden.workspace import local_principal

    ws = state(ctx).open()
    try:
        outcome = run_ingest(ws, dataset, data, local_principal(), report_dir=report_dir)
    finally:
        ws.close()
    print_json(outcome)
    if outcome["status"] != "accepted":
        raise typer.Exit(1)


@app.command("release")
def release(
    ctx: typer.Context,
    batch: Annotated[str, typer.Argument(help="Batch id from `data ingest`.")],
    reason: Annotated[str, typer.Option("--reason", help="Why this quarantined batch may be used.")],
) -> None:
    """Release a quarantined batch (by someone other than its ingester)."""
    from mlwarden.data.ingest import release as run_release
    from mlwarden.workspace import local_principal

    ws = state(ctx).open()
    try:
        print_json(run_release(ws, batch, local_principal(), reason))
    finally:
        ws.close()


@contract_app.command("infer")
def infer(data: Annotated[Path, typer.Argument(help="CSV, Parquet or JSON lines.")]) -> None:
    """Print a starting contract inferred from DATA (types, nullability, ranges, small category sets)."""
    typer.echo(infer_contract(data), nl=False)
