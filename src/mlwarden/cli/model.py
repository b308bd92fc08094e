"""``mlwarden model`` and ``mlwarden dataset``: register, inspect, trace and run models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from mlwarden.cli.context import print_json, state
from mlwarden.errors import InvalidInput
from mlwarden.registry.dataset_versions import get_dataset, register_dataset
from mlwarden.registry.models import STAGES, describe, get_version, lineage, list_models, parse_ref, register_model
from mlwarden.runtime.predict import predict as run_predict
from mlwarden.workspace import local_principal

app = typer.Typer(
    help="Register models by content hash, inspect their cards and lineage, predict.", no_args_is_help=True
)
dataset_app = typer.Typer(help="Register datasets by content hash with a column profile.", no_args_is_help=True)


@app.command()
def register(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    path: Annotated[Path, typer.Argument(help="Model file (.onnx, .skops; .safetensors recorded only).")],
    card: Annotated[Path, typer.Option("--card", help="Model card (Markdown with YAML front matter).")],
    dataset: Annotated[list[str] | None, typer.Option("--dataset", help="Training data, NAME@sha256:HEX.")] = None,
    code_commit: Annotated[str | None, typer.Option("--code-commit", help="Git commit of the training code.")] = None,
    parent: Annotated[str | None, typer.Option("--parent", help="Parent model, NAME:VERSION.")] = None,
    signature: Annotated[Path | None, typer.Option("--signature", help="Signature file narrowing the inputs.")] = None,
) -> None:
    """Register the next version of NAME (stage candidate); print name, version and sha256."""
    ws = state(ctx).open()
    try:
        result = register_model(
            ws, name=name, path=path, card_path=card, principal=local_principal(), datasets=dataset or [],
            code_commit=code_commit, parent=parent, signature_path=signature,
        )  # fmt: skip
    finally:
        ws.close()
    print_json(result.to_json())


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """Every registered version, one JSON object per line."""
    ws = state(ctx).open()
    try:
        for row in list_models(ws):
            print_json(row)
    finally:
        ws.close()


@app.command()
def show(ctx: typer.Context, ref: Annotated[str, typer.Argument(help="NAME or NAME:VERSION.")]) -> None:
    """Card, signature, lineage, stage and hashes of a version."""
    from mlwarden.registry.models import aliases_of

    ws = state(ctx).open()
    try:
        shown = describe(get_version(ws, *parse_ref(ref, default_version=True, ws=ws)))
        shown["aliases"] = {a: v for a, v in aliases_of(ws, shown["name"]).items() if v == shown["version"]}
        print_json(shown)
    finally:
        ws.close()


def _tree(node: dict[str, Any], indent: str = "") -> list[str]:
    lines = [f"{indent}{node['model']}  sha256:{node['sha256'][:16]}…"]
    for ds in node["datasets"]:
        lines.append(f"{indent}├── dataset {ds['name']}:{ds['version']}  sha256:{ds['sha256'][:16]}…")
    if node["code_commit"]:
        lines.append(f"{indent}├── code {node['code_commit']}")
    for parent in node["parents"]:
        lines.append(f"{indent}└── parent")
        lines.extend(_tree(parent, indent + "    "))
    return lines


@app.command("lineage")
def lineage_(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME:VERSION.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the tree as JSON.")] = False,
) -> None:
    """The lineage tree: datasets by hash, code commit, parent versions."""
    name, version = parse_ref(ref)
    ws = state(ctx).open()
    try:
        tree = lineage(ws, name, version or 1)
    finally:
        ws.close()
    if as_json:
        print_json(tree)
    else:
        typer.echo("\n".join(_tree(tree)))


@app.command()
def predict(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME or NAME:VERSION.")],
    input_file: Annotated[Path, typer.Option("--input", help="JSON list of rows (objects or lists).")],
) -> None:
    """Validate rows, predict locally, record the decision in the ledger; print the result."""
    try:
        text = input_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {input_file}: {exc}") from exc
    try:
        rows = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{input_file} is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    ws = state(ctx).open()
    try:
        name, version = parse_ref(ref, default_version=True, ws=ws)
        print_json(run_predict(ws, name, version, rows, local_principal()))
    finally:
        ws.close()


@app.command()
def promote(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version to move.", min=1)],
    to: Annotated[str, typer.Option("--to", help=f"Target stage: {', '.join(STAGES)}.")],
    eval_file: Annotated[Path | None, typer.Option("--eval", help="Evaluation data for performance/fairness.")] = None,
) -> None:
    """Run the stage's gates and move the version only if all pass; the gateway serves production."""
    from mlwarden.errors import GateFailed
    from mlwarden.gates.reports import table
    from mlwarden.registry.governance import promote as run_promotion

    ws = state(ctx).open()
    try:
        result = run_promotion(ws, name, version, to, local_principal(), eval_path=eval_file)
    except GateFailed as exc:
        typer.echo(table(exc.results, f"gates for {name}:{version} -> {to}"))
        raise
    finally:
        ws.close()
    print_json(result)


@app.command()
def approve(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version.", min=1)],
    comment: Annotated[str | None, typer.Option("--comment")] = None,
) -> None:
    """Approve a version (the registrant's own approval does not count for the approvals gate)."""
    from mlwarden.registry.governance import approve as record_approval

    ws = state(ctx).open()
    try:
        print_json(record_approval(ws, name, version, local_principal(), comment))
    finally:
        ws.close()


@app.command()
def attach(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME:VERSION.")],
    report: Annotated[Path, typer.Option("--report", help="pip-audit, OSV, Trivy or CycloneDX JSON.")],
) -> None:
    """Attach a vulnerability report to a version (judged by the vulnerabilities gate)."""
    from mlwarden.registry.governance import attach_report

    name, version = parse_ref(ref)
    ws = state(ctx).open()
    try:
        print_json(attach_report(ws, name, version or 1, report, local_principal()))
    finally:
        ws.close()


@app.command()
def alias(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="e.g. champion, challenger.")],
    version: Annotated[int, typer.Argument(help="Version the alias points at.", min=1)],
) -> None:
    """Point an alias at a version (use it as NAME@ALIAS in show and predict)."""
    from mlwarden.registry.governance import set_alias

    ws = state(ctx).open()
    try:
        print_json(set_alias(ws, name, alias_name, version, local_principal()))
    finally:
        ws.close()


@app.command()
def rollback(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Model name.")]) -> None:
    """Serve the previous production version again (recorded)."""
    from mlwarden.registry.governance import rollback as do_rollback

    ws = state(ctx).open()
    try:
        print_json(do_rollback(ws, name, local_principal()))
    finally:
        ws.close()


@app.command()
def archive(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version.", min=1)],
) -> None:
    """Archive a version (it is no longer served)."""
    from mlwarden.registry.governance import promote as run_promotion

    ws = state(ctx).open()
    try:
        print_json(run_promotion(ws, name, version, "archived", local_principal()))
    finally:
        ws.close()


@app.command()
def check(ctx: typer.Context) -> None:
    """Compare every version's stage with the ledger; report (and record) any changed directly in the database."""
    from mlwarden.registry.governance import report_drift

    ws = state(ctx).open()
    try:
        drift = report_drift(ws, local_principal())
    finally:
        ws.close()
    for item in drift:
        print_json(item)
    if drift:
        raise typer.Exit(1)
    typer.echo("every stage matches the ledger")


def _reject_constant(name: str) -> Any:
    raise InvalidInput(f"input contains {name}, which JSON cannot carry")


@dataset_app.command("register")
def dataset_register(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    path: Annotated[Path | None, typer.Argument(help="CSV, Parquet or JSON lines file.")] = None,
    from_dvc: Annotated[
        Path | None, typer.Option("--from-dvc", help="Record a DVC-tracked file by its .dvc md5.")
    ] = None,
    label: Annotated[str | None, typer.Option("--label", help="The label column (for label-flip screening).")] = None,
    contract: Annotated[
        Path | None, typer.Option("--contract", help="Data contract YAML kept with the dataset.")
    ] = None,
) -> None:
    """Register a dataset version: sha256, rows, schema fingerprint, column profile (the first is the reference)."""
    ws = state(ctx).open()
    try:
        result = register_dataset(
            ws, name=name, path=path, principal=local_principal(), dvc=from_dvc, label=label, contract=contract
        )
    finally:
        ws.close()
    print_json(result)


@dataset_app.command("show")
def dataset_show(ctx: typer.Context, ref: Annotated[str, typer.Argument(help="NAME or NAME:VERSION.")]) -> None:
    """A dataset version with its profile."""
    name, version = parse_ref(ref, default_version=True)
    ws = state(ctx).open()
    try:
        print_json(get_dataset(ws, name, version))
    finally:
        ws.close()
