"""``mlwarden data``: contracts for CI (check, infer), ingestion, release and the batch list."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from mlwarden.cli.context import print_json, state
from mlwarden.cli.keys import VALID_DAYS_HELP, read_statement, valid_for, write_statement
from mlwarden.data.check import check_file
from mlwarden.data.contracts import load_contract
from mlwarden.data.infer import infer_contract
from mlwarden.errors import InvalidInput

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
        try:
            junit.write_text(report.junit(data.name), encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"cannot write the JUnit report to {junit}: {exc.strerror or exc}") from exc
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
    subject_column: Annotated[
        str | None,
        typer.Option(
            "--subject-column",
            help="Column naming each row's data subject: the row's personal cells are sealed under the subject's "
            "keys (erased with `privacy erase`); the column is not stored in clear.",
        ),
    ] = None,
) -> None:
    """Contract and screening; prints {batch, status, reasons, flagged_rows}; exit 0 accepted, 1 quarantined, 2 bad."""
    from mlwarden.data.ingest import ingest as run_ingest
    from mlwarden.workspace import local_principal

    ws = state(ctx).open()
    try:
        outcome = run_ingest(ws, dataset, data, local_principal(), report_dir=report_dir, subject_column=subject_column)
    finally:
        ws.close()
    print_json(outcome)
    if outcome["status"] != "accepted":
        raise typer.Exit(1)


@app.command("release")
def release(
    ctx: typer.Context,
    batch: Annotated[str, typer.Argument(help="Batch id from `data ingest`.")],
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why this quarantined batch may be used (signed with --sign-with).")
    ] = None,
    sign_with: Annotated[
        Path | None, typer.Option("--sign-with", help="Your private key (`mlwarden keys create`): a signed release.")
    ] = None,
    approval: Annotated[
        Path | None, typer.Option("--approval", help="A signed release made elsewhere (`--sign-with KEY --out`).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="With --sign-with: write the signed release here, release nothing.")
    ] = None,
    valid_days: Annotated[int, typer.Option("--valid-days", min=1, max=366, help=VALID_DAYS_HELP)] = 30,
) -> None:
    """Release a quarantined batch: as yourself (OS account) or with your own key; never by its ingester."""
    from mlwarden.data.ingest import release as run_release
    from mlwarden.data.ingest import release_with_key, sign_release
    from mlwarden.identity.personal_keys import load_personal_key
    from mlwarden.workspace import local_principal

    if sign_with is not None and approval is not None:
        raise InvalidInput("use either --sign-with or --approval, not both")
    if out is not None and sign_with is None:
        raise InvalidInput("--out goes with --sign-with")
    if approval is None and reason is None:
        raise InvalidInput("a release needs --reason")
    key = load_personal_key(sign_with) if sign_with is not None else None
    signed = read_statement(approval) if approval is not None else None
    ws = state(ctx).open()
    try:
        if key is not None and out is not None:
            statement = sign_release(ws, batch, key, reason or "", valid_for=valid_for(valid_days))
            write_statement(out, statement)
            result = {"statement": str(out), **statement.statement}
        elif key is not None:
            result = release_with_key(ws, batch, local_principal(), key, reason or "", valid_for=valid_for(valid_days))
        else:
            result = run_release(ws, batch, local_principal(), reason, signed=signed)
    finally:
        ws.close()
    print_json(result)


@contract_app.command("infer")
def infer(data: Annotated[Path, typer.Argument(help="CSV, Parquet or JSON lines.")]) -> None:
    """Print a starting contract inferred from DATA (types, nullability, ranges, small category sets)."""
    typer.echo(infer_contract(data), nl=False)


@app.command("batches")
def batches(
    ctx: typer.Context,
    quarantined: Annotated[bool, typer.Option("--quarantined", help="Only batches still in quarantine.")] = False,
    dataset: Annotated[str | None, typer.Option("--dataset", help="Only this dataset's batches.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line instead of a table.")] = False,
) -> None:
    """Ingested batches: id, dataset, status, rows, reasons, ingested_by, created."""
    from mlwarden.cli.tables import print_rows
    from mlwarden.data.batches import list_batches

    ws = state(ctx).open()
    try:
        found = [b.to_json() for b in list_batches(ws, quarantined=quarantined, dataset=dataset)]
    finally:
        ws.close()
    columns = [
        ("id", "id", None), ("dataset", "dataset", 24), ("status", "status", None), ("rows", "rows", None),
        ("ingested_by", "ingested_by", 28), ("created", "created", None), ("reasons", "reasons", 60),
    ]  # fmt: skip
    print_rows(found, columns, as_json=as_json, empty="no quarantined batches" if quarantined else "no batches")


@app.command("rows")
def rows(
    ctx: typer.Context,
    batch: Annotated[str, typer.Argument(help="Batch id from `data ingest` (one whose personal cells were sealed).")],
    out: Annotated[Path | None, typer.Option("--out", help="Write here (mode 0600) instead of stdout.")] = None,
) -> None:
    """A batch's rows with their sealed personal cells opened (erased rows keep only their clear cells)."""
    from mlwarden.data.batch_rows import open_batch_rows

    ws = state(ctx).open()
    try:
        found = open_batch_rows(ws, batch)
    finally:
        ws.close()
    document = {"batch": batch, "rows": found}
    if out is None:
        print_json(document)
        return
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise InvalidInput(f"cannot create {out}: {exc.strerror} (it must not exist yet)") from exc
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(document, handle, default=str)
    print_json({"out": str(out), "rows": len(found), "erased": sum(1 for r in found if "erased" in r)})
